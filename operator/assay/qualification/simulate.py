"""Synthetic evidence for tests, benchmarks and demos: judges with known quality and known biases.

Pure Python and seeded, so the same arguments give the same records. The model, per non-control pair:
- the true verdict is candidate with probability mu - tie_rate / 2, tie with tie_rate, baseline otherwise,
  so an unbiased judge that names the true verdict in both orders gives E[s] = mu and s in {0, 0.5, 1};
- with probability length_bias * tanh(|chars difference| / length_scale) the judge prefers the longer answer
  for this pair (in both orders: length bias is a property of the pair, so it does not show as
  inconsistency); otherwise it means to name the true verdict;
- each presentation order is then judged on its own: with probability `position_bias` the judge names the
  answer shown first; else, with probability `invalid_rate`, an unreadable verdict; else the verdict it
  meant;
- lengths: the baseline's is log-normal around `baseline_chars`, the candidate's is the baseline's times a
  log-normal ratio around `length_ratio` (spread `length_spread`), so some pairs have the candidate shorter.
- fingerprints (with `fingerprints`, or whenever `prompt_independent` > 0): every answer gets a random 64-bit
  fingerprint, except that with probability
  `prompt_independent` the candidate gives one constant answer whatever the prompt (AlpacaEval's "null
  model" attack), which fools the judge: it then names the candidate in both orders with probability
  `exploit_win`, else the baseline (a separate random stream, so the other draws do not move).
A position-biased judge keeps the two orders symmetric but pulls s towards 0.5 (it turns real wins and
losses into splits); that is why swap consistency is a guardrail. Controls model the judge's sensitivity
directly: a control is caught (baseline named in both orders) with probability `control_catch`, else tied.
"""

from __future__ import annotations

import dataclasses
import math
import random

from assay.qualification import evidence, judge


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A candidate, a judge and a dataset, as probabilities (see the module docstring)."""

    mu: float = 0.5
    tie_rate: float = 0.3
    position_bias: float = 0.0
    length_bias: float = 0.0
    length_ratio: float = 1.0
    length_spread: float = 0.35
    length_scale: float = 500.0
    baseline_chars: float = 800.0
    invalid_rate: float = 0.0
    agreement_rate: float = 0.0
    control_rate: float = 0.0
    control_catch: float = 1.0
    format_pass_baseline: float | None = None
    format_pass_candidate: float | None = None
    prompt_independent: float = 0.0
    exploit_win: float = 0.8
    fingerprints: bool = False

    def __post_init__(self) -> None:
        if not self.tie_rate / 2 <= self.mu <= 1 - self.tie_rate / 2:
            raise ValueError(
                f"mu {self.mu} is impossible with tie_rate {self.tie_rate}: need tie_rate/2 <= mu <= 1 - tie_rate/2"
            )


def simulate_scores(n: int, *, mu: float, tie_rate: float = 0.3, seed: int = 0) -> list[float]:
    """n scores of a consistent, unbiased judge: 1 with probability mu - tie_rate/2, 0.5 with tie_rate, else 0."""
    Scenario(mu=mu, tie_rate=tie_rate)  # validates mu against tie_rate
    rng = random.Random(seed)
    win = mu - tie_rate / 2
    out = []
    for _ in range(n):
        u = rng.random()
        out.append(1.0 if u < win else 0.5 if u < win + tie_rate else 0.0)
    return out


def simulate_evidence(n: int, scenario: Scenario, *, seed: int = 0) -> list[evidence.EvidenceRecord]:
    """n evidence records (controls included) drawn from the scenario, with seq 0..n-1."""
    rng = random.Random(seed)
    prints = random.Random(f"fingerprints-{seed}")
    return [_record(i, scenario, rng, prints) for i in range(n)]


CONSTANT_ANSWER = f"{0x5EED_0F_A11_C0DE:016x}"


def _record(seq: int, sc: Scenario, rng: random.Random, prints: random.Random) -> evidence.EvidenceRecord:
    record_id = f"sim-{seq:05d}"
    if rng.random() < sc.control_rate:
        winner: judge.Winner = "baseline" if rng.random() < sc.control_catch else "tie"
        verdicts = evidence.JudgeVerdicts(candidate_first=winner, baseline_first=winner)
        return evidence.EvidenceRecord(seq=seq, id=record_id, control=True, judge=verdicts)
    baseline_chars = max(1, round(sc.baseline_chars * math.exp(rng.gauss(0.0, 0.4))))
    candidate_chars = max(1, round(baseline_chars * sc.length_ratio * math.exp(rng.gauss(0.0, sc.length_spread))))
    chars = evidence.Chars(baseline=baseline_chars, candidate=candidate_chars)
    formats = None
    if sc.format_pass_baseline is not None and sc.format_pass_candidate is not None:
        formats = evidence.FormatChecks(
            baseline=rng.random() < sc.format_pass_baseline, candidate=rng.random() < sc.format_pass_candidate
        )
    baseline_print = f"{prints.getrandbits(64):016x}"
    exploit = sc.prompt_independent > 0 and prints.random() < sc.prompt_independent
    candidate_print = CONSTANT_ANSWER if exploit else f"{prints.getrandbits(64):016x}"
    if rng.random() < sc.agreement_rate and not exploit:
        same = evidence.Chars(baseline=baseline_chars, candidate=baseline_chars)
        agreed_prints = (
            evidence.Fingerprints(baseline=baseline_print, candidate=baseline_print)
            if sc.fingerprints or sc.prompt_independent > 0
            else None
        )
        return evidence.EvidenceRecord(
            seq=seq, id=record_id, agreement="exact", chars=same, format_ok=formats, fingerprint=agreed_prints
        )
    fingerprinted = sc.fingerprints or sc.prompt_independent > 0
    fingerprints = evidence.Fingerprints(baseline=baseline_print, candidate=candidate_print) if fingerprinted else None
    u = rng.random()
    win = sc.mu - sc.tie_rate / 2
    truth: judge.Winner = "candidate" if u < win else "tie" if u < win + sc.tie_rate else "baseline"
    difference = candidate_chars - baseline_chars
    longer: judge.Winner = "candidate" if difference > 0 else "baseline"
    pull = sc.length_bias * math.tanh(abs(difference) / sc.length_scale) if difference else 0.0
    meant = longer if pull and rng.random() < pull else truth
    if exploit:
        meant = "candidate" if prints.random() < sc.exploit_win else "baseline"
    verdicts = evidence.JudgeVerdicts(
        candidate_first=_order_verdict(meant, "candidate", sc, rng),
        baseline_first=_order_verdict(meant, "baseline", sc, rng),
    )
    return evidence.EvidenceRecord(
        seq=seq, id=record_id, judge=verdicts, chars=chars, format_ok=formats, fingerprint=fingerprints
    )


def _order_verdict(meant: judge.Winner, first: judge.Winner, sc: Scenario, rng: random.Random) -> judge.Winner:
    if sc.position_bias and rng.random() < sc.position_bias:
        return first
    if sc.invalid_rate and rng.random() < sc.invalid_rate:
        return "invalid"
    return meant
