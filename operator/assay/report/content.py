"""What a qualification report says: the decision recomputed from evidence, and every number behind it. Pure.

`build` replays evidence records through `assay.qualification.decision` exactly as the operator does (same
records, same order, same settings), so the report's verdict is the one the run reached, or would reach.
The row functions turn a Report into the labelled, formatted numbers that the HTML and Markdown renderings
share, so both say the same thing to the same digit; the JSON rendering carries the unformatted values.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from assay.api import routepolicy
from assay.optimize import checkpoint
from assay.qualification import cost, decision, evidence
from assay.watch import evidence as watch_evidence
from assay.watch import state

UNDECIDED = "undecided"
SCORE_LABELS: tuple[str, ...] = ("0", "0.25", "0.5", "0.75", "1")

GUARDRAIL_TITLES: Mapping[str, str] = {
    "control": "Control catch rate",
    "swap": "Swap consistency",
    "length": "Length-controlled lower bound",
    "format": "Format pass-rate drop",
}


@dataclasses.dataclass(frozen=True)
class RecordedStatus:
    """What the QualificationRun's status in the cluster says, to set beside the recomputed verdict."""

    phase: str | None = None
    reason: str | None = None
    message: str | None = None


@dataclasses.dataclass(frozen=True)
class Report:
    """A qualification, recomputed: the decision (None while the run is still undecided), its stats, the
    measured cost and latency per request, and the score distribution of the records the decision consumed."""

    name: str
    source: str
    settings: decision.TestSettings
    outcome: decision.Decision | None
    stats: dict[str, Any]
    money: dict[str, Any]
    scores: dict[str, list[int]]
    available_records: int
    baseline_model: str | None = None
    candidate_model: str | None = None
    recorded: RecordedStatus | None = None
    generated_at: str = ""
    # The system prompts the run sent (None: not known, e.g. evidence read without its run's spec), and the
    # optimizer's split and scored variants when the run carries them (else nothing is shown for them).
    prompts: Prompts | None = None
    split: Mapping[str, Any] | None = None
    variants: tuple[dict[str, Any], ...] = ()

    @property
    def verdict(self) -> str:
        """passed, failed, inconclusive, or undecided (the evidence so far does not settle the run)."""
        return self.outcome.verdict if self.outcome is not None else UNDECIDED

    @property
    def reason(self) -> str:
        return self.outcome.reason if self.outcome is not None else "Evaluating"

    @property
    def message(self) -> str:
        if self.outcome is not None:
            return self.outcome.message
        return (
            f"The test has not decided after {self.stats['samples']} pairs: the evidence so far settles nothing "
            "(the run is still evaluating, or stopped before a verdict)."
        )

    @property
    def savings(self) -> tuple[float | None, float | None]:
        """(percent saved, USD saved per 1,000 requests) of the candidate against the baseline."""
        return cost.savings(self.money["cost"]["baseline"], self.money["cost"]["candidate"])

    @property
    def disagrees_with_status(self) -> bool:
        """The cluster's recorded verdict differs from the recomputed one (evidence lost, or settings changed)."""
        phase = (self.recorded.phase or "").lower() if self.recorded else ""
        return phase in ("passed", "failed", "inconclusive") and phase != self.verdict

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the decision's stats as they are, with the run, settings, cost and scores."""
        percent, per_1k = self.savings
        settings = dataclasses.asdict(self.settings)
        settings["bets"] = list(self.settings.bets)
        return {
            "name": self.name,
            "source": self.source,
            "generated_at": self.generated_at,
            "baseline_model": self.baseline_model,
            "candidate_model": self.candidate_model,
            "verdict": self.verdict,
            "reason": self.reason,
            "message": self.message,
            "recorded_status": None if self.recorded is None else dataclasses.asdict(self.recorded),
            "available_records": self.available_records,
            "settings": settings,
            "stats": self.stats,
            "cost": self.money,
            "savings": {"percent": percent, "per_1k_requests": per_1k},
            "scores": {"values": list(evidence.SCORES), **self.scores},
            "prompts": None if self.prompts is None else self.prompts.to_dict(),
            "split": None if self.split is None else dict(self.split),
            "variants": [dict(v) for v in self.variants],
        }


def build(
    records: Iterable[evidence.EvidenceRecord],
    settings: decision.TestSettings,
    *,
    name: str,
    source: str,
    ended: bool = True,
    baseline_model: str | None = None,
    candidate_model: str | None = None,
    prices: Mapping[str, cost.Price] | None = None,
    recorded: RecordedStatus | None = None,
    now: datetime.datetime | None = None,
    prompts: Prompts | None = None,
    split: Mapping[str, Any] | None = None,
    variants: Iterable[Any] = (),
) -> Report:
    """Replay `records` (in evaluation order) through the decision procedure and gather the report.

    With `ended` the evidence is complete, so an undecided test is concluded (Inconclusive), as the operator
    does when the Job is done; without it an undecided test stays undecided. `prompts` are the system prompts
    the run sent; `split` (assay.optimize.split.Split.status()) and `variants` (assay.optimize.driver.Variant or
    its dict) are shown only when given.
    """
    available = list(records)
    qualification = decision.Qualification(settings)
    outcome: decision.Decision | None = None
    for record in available:
        outcome = qualification.add(record)
        if outcome is not None:
            break
    if outcome is None and ended:
        outcome = qualification.finish()
    stats = outcome.stats if outcome is not None else qualification.stats()
    consumed = available[: qualification.records]
    scores = {"pairs": [0] * len(evidence.SCORES), "controls": [0] * len(evidence.SCORES)}
    for record in consumed:
        scores["controls" if record.control else "pairs"][evidence.SCORES.index(evidence.score(record))] += 1
    money = cost.per_request(
        [record.to_dict() for record in consumed],
        baseline_model=baseline_model or "",
        candidate_model=candidate_model or "",
        prices=prices if prices is not None else cost.default_prices(),
    )
    moment = now or datetime.datetime.now(datetime.UTC)
    return Report(
        name=name,
        source=source,
        settings=settings,
        outcome=outcome,
        stats=stats,
        money=money,
        scores=scores,
        available_records=len(available),
        baseline_model=baseline_model,
        candidate_model=candidate_model,
        recorded=recorded,
        generated_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        prompts=prompts,
        split=split,
        variants=tuple(variant(v) for v in variants),
    )


# -- the numbers, formatted once for every human-readable rendering ---------------------------------------


def number(value: Any, digits: int = 3) -> str:
    """A float to `digits` decimals, an int as is, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def stopped_at(report: Report) -> int | None:
    """The pair at which the test decided (None while undecided)."""
    return report.stats["samples"] if report.outcome is not None else None


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """(label, value) lines of the headline: verdict, test, judge and evidence counts."""
    s, settings = report.stats, report.settings
    rows = [
        ("Verdict", report.verdict.upper()),
        ("Reason", report.reason),
        ("Message", report.message),
    ]
    if report.recorded is not None:
        recorded = report.recorded
        rows.append(("Status in the cluster", f"{recorded.phase or 'none'} ({recorded.reason or 'no reason'})"))
    rows += [
        ("Baseline model", report.baseline_model or "n/a"),
        ("Candidate model", report.candidate_model or "n/a"),
    ]
    if report.prompts is not None:
        digest = report.prompts.digest
        rows.append(("Candidate system prompt", f"{digest} (below)" if digest else "none"))
    rows += [
        ("Pairs (samples)", number(s["samples"])),
        ("Controls", number(s["controls"])),
        ("Records consumed / available", f"{s['records']} / {report.available_records}"),
        ("Stopped at pair", number(stopped_at(report))),
        ("Estimate (mean score)", number(s["estimate"])),
        ("Lower bound (level alpha/K)", number(s["lower"])),
        ("Upper bound (level alpha)", number(s["upper"])),
        ("Bar 0.5 - margin", f"{number(s['null_mean'])} (margin {settings.margin:g})"),
        ("Anytime p-value", f"{number(s['p_value'], 4)} (passes at <= {settings.pass_level:.4g})"),
        ("Alpha / candidates on the pool", f"{settings.alpha:g} / {settings.candidates}"),
        ("Lower bound cleared the bar at pair", number(s["crossed_at"])),
        ("Test failed statistically at pair", number(s["failed_at"])),
        ("Judge calls made", number(s["judge_calls_made"])),
        ("Judge calls saved (agreement)", number(s["judge_calls_saved"])),
        ("Tie rate", number(s["tie_rate"])),
        ("Agreement rate", number(s["agreement_rate"])),
        ("Length ratio (candidate / baseline)", number(s["length_ratio"], 2)),
        ("Length-controlled estimate", number(s["length_controlled_estimate"])),
        (
            "Format pass rate baseline / candidate",
            f"{number(s['format_pass_rate_baseline'])} / {number(s['format_pass_rate_candidate'])}",
        ),
    ]
    return rows


@dataclasses.dataclass(frozen=True)
class GuardrailRow:
    """One guardrail, formatted: what it measures, its value, what it must be, and its state."""

    name: str
    title: str
    value: str
    limit: str
    status: str
    evidence: str
    reason: str


def guardrail_rows(report: Report) -> list[GuardrailRow]:
    """Every guardrail of the decision with its value, its limit (as a condition) and its status."""
    settings = report.settings
    rows = []
    for g in report.stats["guardrails"]:
        name, status, value, limit = g["name"], g["status"], g["value"], g["limit"]
        if status == "insufficient" and name in ("control", "swap"):
            # While evidence is missing the decision reports the minimum count as the limit.
            wanted = f"at least {number(limit)} {'controls' if name == 'control' else 'judged pairs'}"
        elif name == "control":
            wanted = f">= {number(settings.control_catch_min, 2)}"
        elif name == "swap":
            wanted = f">= {number(settings.swap_consistency_min, 2)}"
        elif name == "length":
            wanted = f"> {number(limit)} (at every length ratio)"
        else:
            wanted = f"<= {number(limit)}"
        rows.append(
            GuardrailRow(
                name=name,
                title=GUARDRAIL_TITLES.get(name, name),
                value=number(value),
                limit=wanted,
                status=status,
                evidence=number(g["evidence"]),
                reason=g["reason"],
            )
        )
    return rows


def money_rows(report: Report) -> list[tuple[str, str, str]]:
    """(measure, baseline, candidate): tokens, cost and median latency per request."""
    money = report.money

    def usd(value: float | None) -> str:
        return "n/a" if value is None else f"${value:.6f}"

    return [
        ("Tokens per request (mean)", number(money["tokens"]["baseline"], 1), number(money["tokens"]["candidate"], 1)),
        ("Cost per request (USD)", usd(money["cost"]["baseline"]), usd(money["cost"]["candidate"])),
        (
            "Latency per request (median ms)",
            number(money["latency_ms"]["baseline"], 1),
            number(money["latency_ms"]["candidate"], 1),
        ),
    ]


def savings_line(report: Report) -> str:
    share, per_1k = report.savings
    if share is None or per_1k is None:
        return "Savings: n/a (no priced token usage for both sides)."
    return f"Savings: {share:.1f}% of the baseline's cost, ${per_1k:.4f} per 1,000 requests."


def score_rows(report: Report) -> list[tuple[str, str, str]]:
    """(score, pairs, controls): how often each score value occurred among the consumed records."""
    pairs, controls = report.scores["pairs"], report.scores["controls"]
    return [(label, str(pairs[i]), str(controls[i])) for i, label in enumerate(SCORE_LABELS)]


# -- the prompt that qualified, and the optimizer's split and variants ------------------------------------

SERVED_AS = (
    "Served on the candidate's arm only (gateway kind LiteLLMConfigMap, litellm_system_prompt): put in front of "
    "the app's own system message (stripped, then a blank line), or sent as the first system message when the "
    "app sends none. The evaluator sent it the same way."
)


@dataclasses.dataclass(frozen=True)
class Prompts:
    """The system prompts the run sent: the candidate's (what a promotion serves) and the baseline's; None for a
    side without one. Their text is user text: it goes into the report, never into a log."""

    candidate: str | None
    baseline: str | None
    candidate_model: str = ""

    @property
    def digest(self) -> str | None:
        """The candidate prompt's content hash, as the gateway's prompt arm and status.activeRoute name it."""
        if not self.candidate:
            return None
        from assay.gateways import interface  # the gateways' own hash (imported late: it loads the adapters)

        return interface.prompt_digest(self.candidate)

    @property
    def arm(self) -> str | None:
        """The LiteLLM model group that serves the candidate under its prompt (status.activeRoute.model)."""
        if not self.candidate or not self.candidate_model:
            return None
        from assay.gateways import litellm_config

        return litellm_config.arm_name(self.candidate_model, self.candidate)

    @property
    def diff(self) -> list[str]:
        """The unified diff from the baseline's prompt to the candidate's; empty when either has none or they
        are equal."""
        if not self.candidate or not self.baseline:
            return []
        return list(
            difflib.unified_diff(
                self.baseline.splitlines(),
                self.candidate.splitlines(),
                fromfile="baseline system prompt",
                tofile="candidate system prompt",
                lineterm="",
            )
        )

    @property
    def comparison(self) -> str:
        """One sentence on how the candidate's prompt relates to the baseline's."""
        if not self.baseline:
            return "The baseline has no system prompt."
        if not self.candidate:
            return "The candidate has no system prompt; the baseline's is below."
        if self.baseline == self.candidate:
            return "The candidate's system prompt is the same as the baseline's."
        if not self.diff:
            return "The candidate's system prompt differs from the baseline's only in line breaks."
        return "Changes from the baseline's system prompt to the candidate's:"

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "digest": self.digest,
            "arm": self.arm,
            "diff": self.diff,
        }


def prompt_title(report: Report) -> str:
    return "The prompt that qualified" if report.verdict == "passed" else "The prompt under test"


def prompt_rows(report: Report) -> list[tuple[str, str]]:
    """(label, value) lines about the candidate's prompt: its hash and the arm that serves it (no text)."""
    prompts = report.prompts
    if prompts is None:
        return []
    if not prompts.candidate:
        return [("Candidate system prompt", "none: the recorded messages are sent as they are")]
    rows = [("Content hash", prompts.digest or "n/a")]
    if prompts.arm:
        rows.append(("LiteLLM model group serving it (status.activeRoute.model)", prompts.arm))
    return rows


def variant(item: Any) -> dict[str, Any]:
    """One prompt the optimizer scored, as a dict: an assay.optimize.driver.Variant (sha, train_score,
    train_records, validation_score, validation_records, format_ok) or its dict (dataclasses.asdict)."""
    return dataclasses.asdict(item) if dataclasses.is_dataclass(item) and not isinstance(item, type) else dict(item)


def split_rows(report: Report) -> list[tuple[str, str]]:
    """(part, records) of the dataset split the run was qualified under (assay.optimize.split's status form);
    empty when the run carries no split."""
    split = report.split
    if not split:
        return []
    sizes = split.get("sizes") or {}
    shares = {"validation": split.get("validationShare"), "holdout": split.get("holdoutShare")}
    rows = []
    for part, use in (
        ("train", "the optimizer proposes from it"),
        ("validation", "the optimizer picks on it"),
        ("holdout", "never seen by the optimizer; the verdict above is on it"),
    ):
        share = shares.get(part)
        detail = f", share {share:g}" if isinstance(share, int | float) else ""
        rows.append((part.capitalize(), f"{number(sizes.get(part))} records{detail} ({use})"))
    rows.append(("Seed / digest", f"{number(split.get('seed'))} / {str(split.get('digest') or 'n/a')[:12]}"))
    return rows


def variant_rows(report: Report) -> list[tuple[str, str, str, str, str]]:
    """(variant, train score, validation score, format, picked) of each prompt the optimizer scored, the prompt
    as written first; empty when the run carries none."""
    # The variant whose prompt this run qualified (the optimizer's seed, as written, is the empty prompt).
    picked_sha = None if report.prompts is None else checkpoint.prompt_sha(report.prompts.candidate or "")
    rows = []
    for i, v in enumerate(report.variants):
        name = "as written" if i == 0 else f"proposal {i}"
        rows.append(
            (
                f"{name} ({str(v['sha'])[:12]})",
                f"{number(v['train_score'])} on {v['train_records']}",
                f"{number(v['validation_score'])} on {v['validation_records']}",
                "kept" if v["format_ok"] else "broken",
                "yes" if v["sha"] == picked_sha else "",
            )
        )
    return rows


# -- the live quality watch of a promoted route -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WatchReport:
    """A RoutePolicy's live quality watch: status.watch as the operator wrote it, the Watched condition, and the
    watch recomputed from its kept samples (`assay.watch.evidence.replay`)."""

    name: str
    source: str
    watch: routepolicy.WatchStatus
    check: watch_evidence.Check
    settings: state.Settings | None
    watched: str | None = None
    watched_reason: str | None = None
    watched_message: str | None = None
    generated_at: str = ""

    @property
    def verdict(self) -> str:
        """drift (proven), not-watched (a reason holds), or watching."""
        if self.watch.alarmed_at is not None:
            return "drift"
        return "not-watched" if self.watched == "False" else "watching"

    @property
    def reason(self) -> str:
        return "QualityDrift" if self.watch.alarmed_at is not None else self.watched_reason or "Watching"

    @property
    def message(self) -> str:
        return self.watched_message or self.check.message()

    def to_dict(self) -> dict[str, Any]:
        check = self.check.to_dict()
        check["series"] = [s.to_line() for s in self.check.series]
        check["means"] = list(self.check.means)
        return {
            "name": self.name,
            "source": self.source,
            "generated_at": self.generated_at,
            "verdict": self.verdict,
            "reason": self.reason,
            "message": self.message,
            "watched": self.watched,
            "watch": self.watch.to_wire(),
            "settings": None if self.settings is None else watch_evidence.settings_dict(self.settings),
            "evidence": check,
        }


def build_watch(
    policy: Mapping[str, Any], chunks: Iterable[watch_evidence.Chunk], *, now: datetime.datetime | None = None
) -> WatchReport | None:
    """The watch report of a RoutePolicy (as the API returns it) and its kept chunks; None when the policy has
    no status.watch (nothing promoted under spec.watch yet)."""
    meta, status = policy.get("metadata") or {}, policy.get("status") or {}
    if not status.get("watch"):
        return None
    watch = routepolicy.WatchStatus.model_validate(status["watch"])
    promotion = (
        watch_evidence.promotion_key(watch.candidate, watch.promoted_at)
        if watch.candidate is not None and watch.promoted_at is not None
        else ""
    )
    check, settings = watch_evidence.replay(chunks, promotion=promotion, watch=watch)
    watched: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Watched"), {})
    moment = now or datetime.datetime.now(datetime.UTC)
    where = f"RoutePolicy {meta.get('namespace', '')}/{meta.get('name', '')}"
    return WatchReport(
        name=str(meta.get("name", "")),
        source=f"{where}: {watch.candidate or 'n/a'} promoted at {watch.promoted_at or 'n/a'}, mode {watch.mode}",
        watch=watch,
        check=check,
        settings=settings,
        watched=watched.get("status"),
        watched_reason=watched.get("reason"),
        watched_message=watched.get("message"),
        generated_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def watch_rows(report: WatchReport) -> list[tuple[str, str]]:
    """(label, value) lines of a watch: counts, the detector against its threshold, cost, and the replay."""
    w, check = report.watch, report.check
    if w.e_value is not None and w.threshold is not None:
        evidence_line = f"{w.e_value:.4g} of threshold {w.threshold:.4g}"
    else:
        upper = w.detector.get("windowUpper")
        evidence_line = f"window upper bound {number(upper)} against the drift margin (window in progress)"
    rows = [
        ("State", f"{report.verdict} ({report.reason})"),
        ("Candidate watched", w.candidate or "n/a"),
        ("Promoted at", str(w.promoted_at or "n/a")),
        ("Mode", w.mode or "n/a"),
        ("Samples judged", number(w.samples)),
        ("Wins / ties / losses", f"{w.wins} / {w.ties} / {w.losses}"),
        ("Judge errors", number(w.judge_errors)),
        ("Mean score", number(w.mean_score)),
        ("Drift margin", number(w.drift_margin)),
        ("E-value against threshold", evidence_line),
        ("Drift proven at sample", number(w.alarmed_at)),
        ("Cost of watching (USD)", f"{w.cost_usd:.4f} in all, {w.cost_today_usd:.4f} on {w.day or 'n/a'}"),
        ("Samples today", number(w.samples_today)),
        ("Last sample at", str(w.last_sample_at or "n/a")),
        ("Not watched because", (report.watched_reason or "n/a") if report.watched == "False" else "n/a (watched)"),
        ("Evidence kept", check.message()),
    ]
    if report.settings is not None and report.settings.mode == "Window":
        rows.append(("Window (samples, alpha)", f"{report.settings.window_samples}, {report.settings.alpha:g}"))
    return rows
