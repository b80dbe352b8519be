"""A numpy twin of the decision's statistical core, so that studies of thousands of runs take a second.

The pure-Python `Qualification` is the product; this twin replays the same rules on arrays of many runs at
once: the mixture betting wealth of `sequential` (same bets, same thresholds), the pass / fail / futility
order of `decision`, min_samples and max_samples, the swap-consistency guardrail, and the scheduled looks of
the length guardrail. test_twin_matches_the_decision checks it against the real thing run by run; the
length-controlled bound uses the sandwich standard error, which the runtime's one-step bootstrap estimates
(checked to agree there too). Controls are left out (min_controls=0): the control guardrail is tested on the
real code.
"""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np

from assay.qualification import decision

PASSED, FAILED, INCONCLUSIVE = 1, -1, 0
NEVER = np.iinfo(np.int64).max


@dataclasses.dataclass(frozen=True)
class Pairs:
    """R runs of N non-control pairs: scores, whether both orders agreed, and answer lengths (None: not
    measured, so the length guardrail does not apply)."""

    scores: np.ndarray
    consistent: np.ndarray
    chars_baseline: np.ndarray | None = None
    chars_candidate: np.ndarray | None = None


def simulate_pairs(
    runs: int,
    n: int,
    *,
    mu: float,
    tie_rate: float = 0.3,
    position_bias: float = 0.0,
    length_bias: float = 0.0,
    length_ratio: float = 1.0,
    length_spread: float = 0.35,
    length_scale: float = 500.0,
    seed: int = 0,
) -> Pairs:
    """The record-level model of `assay.qualification.simulate`, drawn with numpy (verdicts per order).

    Lengths are drawn only when the model involves them (a length ratio or a length bias); otherwise they
    are left unmeasured, which keeps score-only studies fast.
    """
    rng = np.random.default_rng(seed)
    u = rng.random((runs, n))
    win = mu - tie_rate / 2
    meant = np.where(u < win, 1.0, np.where(u < win + tie_rate, 0.5, 0.0))  # candidate's points
    base = cand = None
    if length_bias or length_ratio != 1.0:
        base = np.maximum(1, np.round(800.0 * np.exp(rng.normal(0.0, 0.4, (runs, n)))))
        cand = np.maximum(1, np.round(base * length_ratio * np.exp(rng.normal(0.0, length_spread, (runs, n)))))
        diff = cand - base
        pull = length_bias * np.tanh(np.abs(diff) / length_scale)
        meant = np.where(rng.random((runs, n)) < pull, np.where(diff > 0, 1.0, 0.0), meant)
    if not position_bias:
        return Pairs(meant, np.ones((runs, n), dtype=bool), base, cand)
    first = np.where(rng.random((runs, n)) < position_bias, 1.0, meant)  # candidate shown first
    second = np.where(rng.random((runs, n)) < position_bias, 0.0, meant)  # baseline shown first
    return Pairs((first + second) / 2, first == second, base, cand)


def crossing_times(
    scores: np.ndarray, *, m: float, level: float, bets: tuple[float, ...], direction: int
) -> np.ndarray:
    """Per run, the first n at which the mixture wealth betting on scores above (+1) or below (-1) m reaches
    1/level; NEVER when it does not."""
    wealth = np.zeros(scores.shape)
    for bet in bets:
        wealth += np.exp(np.cumsum(np.log1p(bet * direction * (scores - m)), axis=1))
    hit = wealth / len(bets) >= 1.0 / level
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, NEVER)


def length_lower_bounds(pairs: Pairs, upto: np.ndarray, *, level: float) -> np.ndarray:
    """Per run, the length-controlled lower bound over its first upto[r] pairs (sandwich SE, logit scale)."""
    assert pairs.chars_baseline is not None and pairs.chars_candidate is not None
    n = int(upto.max())
    runs = len(upto)
    mask = np.arange(n)[None, :] < upto[:, None]
    count = mask.sum(axis=1)
    diff = np.where(mask, pairs.chars_candidate[:, :n] - pairs.chars_baseline[:, :n], 0.0)
    mean_diff = diff.sum(axis=1) / count
    spread = np.sqrt(np.where(mask, (diff - mean_diff[:, None]) ** 2, 0.0).sum(axis=1) / count)
    x = np.where(mask, np.tanh(diff / np.where(spread > 0, spread, 1.0)[:, None]), 0.0)
    s = pairs.scores[:, :n]
    mean = np.where(mask, s, 0.0).sum(axis=1) / count
    a = np.log(mean / (1 - mean))
    b = np.zeros(runs)
    for _ in range(10):  # Newton from the mean: converged well before ten steps
        p = 1 / (1 + np.exp(-(a[:, None] + b[:, None] * x)))
        w = np.where(mask, p * (1 - p), 0.0)
        r = np.where(mask, s - p, 0.0)
        sw, swx, swxx = w.sum(1), (w * x).sum(1), (w * x * x).sum(1)
        g0, g1 = r.sum(1), (r * x).sum(1)
        det = sw * swxx - swx**2
        a = a + (swxx * g0 - swx * g1) / det
        b = b + (sw * g1 - swx * g0) / det
    p = 1 / (1 + np.exp(-(a[:, None] + b[:, None] * x)))
    w = np.where(mask, p * (1 - p), 0.0)
    r = np.where(mask, s - p, 0.0)
    sw, swx, swxx = w.sum(1), (w * x).sum(1), (w * x * x).sum(1)
    det = sw * swxx - swx**2
    # First row of H^-1, then the intercept's variance H^-1 (sum g g^T) H^-1 with g = r (1, x).
    h00, h01 = swxx / det, -swx / det
    variance = ((r * (h00[:, None] + h01[:, None] * x)) ** 2).sum(axis=1)
    z = statistics.NormalDist().inv_cdf(1 - level)
    return 1 / (1 + np.exp(-(a - z * np.sqrt(variance))))


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Per run: PASSED / FAILED / INCONCLUSIVE, the pairs used, and a reason code."""

    verdict: np.ndarray
    samples: np.ndarray
    reason: np.ndarray

    def rate(self, verdict: int) -> float:
        return float(np.mean(self.verdict == verdict))


def decide(pairs: Pairs, settings: decision.TestSettings) -> Outcome:
    """The decision of `Qualification` for every run (no controls: settings.min_controls must be 0)."""
    assert settings.min_controls == 0
    scores = pairs.scores
    runs, n = scores.shape
    horizon = min(n, settings.max_samples)
    scores = scores[:, :horizon]
    m0 = settings.null_mean
    up = crossing_times(scores, m=m0, level=settings.pass_level, bets=settings.bets, direction=1)
    fail_at = 0.5 if settings.futility else m0
    down = crossing_times(scores, m=fail_at, level=settings.alpha, bets=settings.bets, direction=-1)
    failed = down < up
    settle = np.maximum(up, max(settings.min_samples, settings.min_judged_pairs))
    passes = ~failed & (settle <= horizon)
    verdict = np.full(runs, INCONCLUSIVE)
    samples = np.full(runs, horizon)
    reason = np.full(runs, "Undecided", dtype=object)
    verdict[failed] = FAILED
    samples[failed] = down[failed]
    reason[failed] = "Futility"
    at = np.where(passes, settle, 1) - 1
    consistent = np.cumsum(pairs.consistent[:, :horizon], axis=1)[np.arange(runs), at] / (at + 1)
    swap_bad = passes & (consistent < settings.swap_consistency_min)
    verdict[swap_bad] = FAILED
    samples[swap_bad] = settle[swap_bad]
    reason[swap_bad] = "SwapInconsistent"
    candidates = passes & ~swap_bad
    cleared, finished = _length_looks(pairs, settle, candidates, horizon, settings)
    verdict[cleared > 0] = PASSED
    samples[cleared > 0] = cleared[cleared > 0]
    reason[cleared > 0] = "NonInferior"
    verdict[finished] = FAILED
    samples[finished] = horizon
    reason[finished] = "LengthBiased"
    return Outcome(verdict, samples, reason)


def _length_looks(
    pairs: Pairs, settle: np.ndarray, candidates: np.ndarray, horizon: int, settings: decision.TestSettings
) -> tuple[np.ndarray, np.ndarray]:
    """When each candidate run passes the length guardrail (0 if never), and which fail it at the end.

    As in the runtime: the guardrail holds at the first n >= settle where the cumulative length ratio is
    within length_ratio_max; otherwise looks are taken at settle (if a scheduled point is already due), at
    each later scheduled point, and at the end, until one clears.
    """
    runs = len(settle)
    if pairs.chars_baseline is None or pairs.chars_candidate is None:
        return np.where(candidates, settle, 0), np.zeros(runs, dtype=bool)
    schedule = []
    point = settings.length_first_look
    while point < settings.max_samples:
        schedule.append(point)
        point *= 2
    level = settings.pass_level * settings.length_alpha_share / (len(schedule) + 1)
    ratio = np.cumsum(pairs.chars_candidate[:, :horizon], axis=1) / np.cumsum(pairs.chars_baseline[:, :horizon], axis=1)
    within = (ratio <= settings.length_ratio_max) & (np.arange(1, horizon + 1)[None, :] >= settle[:, None])
    first_within = np.where(within.any(axis=1), within.argmax(axis=1) + 1, NEVER)

    def next_point(after: np.ndarray) -> np.ndarray:
        later = [np.where(after < p, p, NEVER) for p in schedule] + [np.full(runs, horizon)]
        return np.minimum.reduce(later)

    due_at_settle = np.zeros(runs, dtype=bool) if not schedule else settle >= schedule[0]
    look = np.where(due_at_settle, settle, next_point(settle))
    cleared = np.zeros(runs, dtype=np.int64)
    finished = np.zeros(runs, dtype=bool)
    active = candidates.copy()
    while active.any():
        by_ratio = active & (first_within <= look)
        cleared[by_ratio] = first_within[by_ratio]
        active &= ~by_ratio
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        sub = Pairs(pairs.scores[idx], pairs.consistent[idx], pairs.chars_baseline[idx], pairs.chars_candidate[idx])
        ok = length_lower_bounds(sub, look[idx], level=level) > settings.null_mean
        cleared[idx[ok]] = look[idx[ok]]
        at_end = idx[~ok & (look[idx] >= horizon)]
        finished[at_end] = True
        active[idx[ok]] = False
        active[at_end] = False
        look = np.where(active, next_point(look), look)
    return cleared, finished
