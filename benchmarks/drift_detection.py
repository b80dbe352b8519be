"""The drift detectors of `assay.watch.drift` on simulated live scores: false alarms, detection delay, cost.

    .venv/bin/python benchmarks/drift_detection.py [--runs 500] [--seed 1]

Scores come from a consistent judge (`simulate.simulate_scores`: 1, 0.5 with 30% ties, or 0). Two drift
margins: the default rule m_d = 0.5 - margin - 0.05 at the default qualification margin 0.05 (m_d = 0.40),
and m_d = 0.45 (qualification margin 0, or a 0.05 gap below 0.5). The e-detector uses its default bets at
threshold c = 1000 (a false alarm at most every 1000 samples on average, by the e-detector guarantee); the
window test is `WatchWindow` over 2000 samples at alpha 0.05.
- False alarms: streams of 10,000 samples at a constant mean at or above m_d; the share of streams in which
  the e-detector alarms is the false alarms per 10,000 samples (it stays alarmed: one alarm per stream at
  most; the column "by 5,000" counts alarms in the first half). For the window: the share of windows that
  alarm.
- Delay: the e-detector watches 1000 samples at mu 0.5, then the mean drops; the delay is counted from the
  drop (runs that alarmed before it are left out and counted), streams cut at 20,000 samples. The window
  starts at the drop (a candidate bad from its promotion) and has 2000 samples to catch it.
- Cost: judge calls 2 per sample plus one baseline replay, priced with the built-in price table.
Prints Markdown; quote medians.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time

from assay.qualification import cost, simulate
from assay.watch import drift

TIES = 0.3
THRESHOLD = 1000.0
WINDOW = 2000
ALPHA = 0.05
NULL_STREAM = 10_000
BEFORE_DROP = 1000
HORIZON = 20_000
DROPS = (0.40, 0.35, 0.30)
MARGINS = (drift.drift_margin(), drift.drift_margin(0.0))  # 0.40 (the default), 0.45

# Cost assumptions: 100k requests a day, 1% sampled, at most 1000 a day; a judge call reads the prompt and two
# answers (1500 tokens in, 20 out), a baseline replay is a typical request (500 in, 400 out).
REQUESTS_PER_DAY, SAMPLE_RATE, CAP = 100_000, 0.01, 1000
JUDGE, BASELINE, CANDIDATE = "gpt-4o", "gpt-4o", "gpt-4o-mini"
JUDGE_TOKENS, REQUEST_TOKENS = (1500, 20), (500, 400)


def first_alarm(detector: drift.DriftDetector | drift.WatchWindow, scores: list[float]) -> int | None:
    for score in scores:
        if detector.update(score):
            return detector.alarmed_at
    return None


def stream_seed(seed: int, *parts: float) -> int:
    return hash((seed, *parts)) & 0xFFFF_FFFF  # ints and floats hash deterministically


def quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def false_alarms(m_d: float, runs: int, seed: int) -> list[str]:
    rows = []
    for mu in sorted({0.5, 0.47, 0.45, m_d}, reverse=True):
        alarms = []
        window_alarms = 0
        for run in range(runs):
            scores = simulate.simulate_scores(NULL_STREAM, mu=mu, tie_rate=TIES, seed=stream_seed(seed, m_d, mu, run))
            alarms.append(first_alarm(drift.DriftDetector(m_d, THRESHOLD), scores))
            window = drift.WatchWindow(m_d, samples=WINDOW, alpha=ALPHA, bounds=False)
            window_alarms += first_alarm(window, scores[:WINDOW]) is not None
        by_half = sum(a is not None and a <= NULL_STREAM // 2 for a in alarms)
        total = sum(a is not None for a in alarms)
        rows.append(
            f"| {m_d:.2f} | {mu:.2f} | {total / runs * 1e4 / NULL_STREAM:.3f} | {by_half / runs:.3f} | "
            f"{window_alarms / runs:.3f} |"
        )
    return rows


def delays(m_d: float, runs: int, seed: int) -> list[str]:
    rows = []
    for mu in DROPS:
        if mu >= m_d:
            rows.append(f"| {m_d:.2f} | {mu:.2f} | at or above m_d: no drift, see false alarms | | | | | |")
            continue
        detected, early, missed = [], 0, 0
        caught, window_missed = [], 0
        for run in range(runs):
            before = simulate.simulate_scores(
                BEFORE_DROP, mu=0.5, tie_rate=TIES, seed=stream_seed(seed, -1, m_d, mu, run)
            )
            after = simulate.simulate_scores(HORIZON, mu=mu, tie_rate=TIES, seed=stream_seed(seed, m_d, mu, run))
            detector = drift.DriftDetector(m_d, THRESHOLD)
            if first_alarm(detector, before) is not None:
                early += 1
            else:
                alarm = first_alarm(detector, after)
                if alarm is None:
                    missed += 1
                else:
                    detected.append(alarm - BEFORE_DROP)
            window_alarm = first_alarm(
                drift.WatchWindow(m_d, samples=WINDOW, alpha=ALPHA, bounds=False), after[:WINDOW]
            )
            if window_alarm is None:
                window_missed += 1
            else:
                caught.append(window_alarm)
        window_cells = (
            f"{statistics.median(caught):.0f} | {quantile(caught, 0.9):.0f} | {1 - window_missed / runs:.3f}"
            if caught
            else "- | - | 0.000"
        )
        rows.append(
            f"| {m_d:.2f} | {mu:.2f} | {statistics.median(detected):.0f} | {quantile(detected, 0.9):.0f} | "
            f"{missed} / {early} | {window_cells} |"
        )
    return rows


def watch_cost() -> list[str]:
    prices = cost.default_prices()
    per_day = drift.samples_per_day(REQUESTS_PER_DAY, SAMPLE_RATE, cap=CAP)
    judge_call = prices[JUDGE].cost(*JUDGE_TOKENS)
    replay = prices[BASELINE].cost(*REQUEST_TOKENS)
    per_sample = 2 * judge_call + replay
    saved = REQUESTS_PER_DAY * (replay - prices[CANDIDATE].cost(*REQUEST_TOKENS))
    return [
        f"{REQUESTS_PER_DAY:,} requests a day, {SAMPLE_RATE:.0%} sampled, at most {CAP:,} a day: "
        f"{per_day:,.0f} samples a day, {2 * per_day:,.0f} judge calls ({JUDGE}, {JUDGE_TOKENS[0]} tokens in and "
        f"{JUDGE_TOKENS[1]} out, ${judge_call:.5f} each) and {per_day:,.0f} baseline replays ({BASELINE}, "
        f"{REQUEST_TOKENS[0]} in, {REQUEST_TOKENS[1]} out, ${replay:.5f} each): ${per_sample:.4f} a sample, "
        f"**${per_sample * per_day:,.2f} a day**, against ${saved:,.2f} a day saved by serving {CANDIDATE} "
        f"instead of {BASELINE} ({100 * per_sample * per_day / saved:.1f}% of the saving). At this rate, "
        f"threshold {THRESHOLD:.0f} is at most one false alarm every "
        f"{THRESHOLD / per_day:g} day(s) on average; `threshold_for(30, {per_day:.0f})` = "
        f"{drift.threshold_for(30, per_day):,.0f} is one a month at most.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="simulated streams per row (500)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    null_rows = [row for m_d in MARGINS for row in false_alarms(m_d, args.runs, args.seed)]
    delay_rows = [row for m_d in MARGINS for row in delays(m_d, args.runs, args.seed)]
    elapsed = time.perf_counter() - started
    command = f"python benchmarks/drift_detection.py --runs {args.runs} --seed {args.seed}"
    lines = [
        f"`{command}` on {datetime.date.today().isoformat()}, {args.runs} streams a row, {elapsed:.0f} s.",
        "",
        "| m_d | mu | e-detector: false alarms per 10,000 samples | by 5,000 | window (2000): alarmed |",
        "| --- | --- | --- | --- | --- |",
        *null_rows,
        "",
        "| m_d | drop to | e-detector: median delay | p90 | missed / alarmed before the drop | "
        "window: median delay | p90 | caught within 2000 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *delay_rows,
        "",
        *watch_cost(),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
