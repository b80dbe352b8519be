"""Pairs to a decision: assay's betting test against confseq's betting martingales on identical score streams.

Run in the peers' own environment (confseq is never a dependency of the product; docs/benchmarks.md says how
benchmarks/.venv-peers is built):

    PYTHONPATH=operator benchmarks/.venv-peers/bin/python benchmarks/peers_confseq.py --runs 500

Every method gets the same decision rule as `assay.qualification.decision` without guardrails: pass when the
martingale against m0 = 0.5 - margin (bets on scores above m0) reaches 1/alpha, not before `min_samples`;
fail when, before that, the martingale against m0 betting on scores below it reaches 1/alpha (BelowMargin)
or the one against 0.5 reaches 1/(alpha/5) (futility); Inconclusive at `max_samples`. Only the bets differ:
- assay: `sequential.BettingTest` (dispersion-scaled, weighted mixture of fractions of 1/m);
- PrPl-EB: confseq's predictable plug-in empirical-Bernstein bets (`lambda_predmix_eb`), truncated at 1/(2m);
- aGRAPA: confseq's approximate GRAPA / Kelly bets (`lambda_aKelly`), truncated at 1/(2m);
- dKelly: confseq's diversified Kelly mixture, D = 10 constant bets (i + 1) / (m (D + 1)) averaged.
The fixed-n z-test sized for 80% power at mu = 0.5 (433 pairs, one look) is the reference.
Scores: a consistent judge, ties (score 0.5) with probability `ties`, wins mu - ties / 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np
from confseq import betting, betting_strategies

from assay.qualification import sequential

MARGIN, ALPHA, FUTILITY_SHARE, MIN_SAMPLES, MAX_SAMPLES, FIXED_N = 0.05, 0.05, 0.2, 50, 1200, 433
NEVER = 10**9

Martingale = Callable[[np.ndarray, float, bool], np.ndarray]


def scores(rng: np.random.Generator, mu: float, ties: float, n: int) -> np.ndarray:
    u = rng.random(n)
    win = mu - ties / 2
    return np.where(u < win, 1.0, np.where(u < win + ties, 0.5, 0.0))


def first(hit: np.ndarray) -> int:
    return int(hit.argmax()) + 1 if hit.any() else NEVER


def decide(crossed: int, failed: int) -> tuple[str, int]:
    """The decision's order of rules: a fail counts only before the pass; a pass waits for min_samples."""
    if failed < crossed and failed <= MAX_SAMPLES:
        return "failed", failed
    settle = max(crossed, MIN_SAMPLES)
    return ("passed", settle) if settle <= MAX_SAMPLES else ("inconclusive", MAX_SAMPLES)


def assay_decision(x: np.ndarray) -> tuple[str, int]:
    test = sequential.BettingTest(
        0.5 - MARGIN, ALPHA, futility_at=0.5, futility_alpha=ALPHA * FUTILITY_SHARE, bounds=False
    )
    for s in x:
        test.update(float(s))
        if test.crossed_at is None and test.failed_at is not None:
            break
        if test.crossed_at is not None and test.n >= MIN_SAMPLES:
            break
    return decide(test.crossed_at or NEVER, test.failed_at or NEVER)


def peer_decision(x: np.ndarray, martingale: Martingale) -> tuple[str, int]:
    m0 = 0.5 - MARGIN
    crossed = first(martingale(x, m0, True) >= 1 / ALPHA)
    below = first(martingale(x, m0, False) >= 1 / ALPHA)
    futile = first(martingale(x, 0.5, False) >= 1 / (ALPHA * FUTILITY_SHARE))
    return decide(crossed, min(below, futile))


def predmix(x: np.ndarray, m: float, above: bool) -> np.ndarray:
    def bets(y: np.ndarray, _m: float) -> np.ndarray:
        return betting_strategies.lambda_predmix_eb(y, alpha=ALPHA)

    return betting.betting_mart(x, m, alpha=ALPHA, lambdas_fn_positive=bets, theta=1.0 if above else 0.0)


def agrapa(x: np.ndarray, m: float, above: bool) -> np.ndarray:
    def positive(y: np.ndarray, mm: float) -> np.ndarray:
        return betting_strategies.lambda_aKelly(y, mm)

    def negative(y: np.ndarray, mm: float) -> np.ndarray:
        return betting_strategies.lambda_aKelly(1 - y, 1 - mm)

    return betting.betting_mart(
        x, m, lambdas_fn_positive=positive, lambdas_fn_negative=negative, theta=1.0 if above else 0.0
    )


def dkelly(x: np.ndarray, m: float, above: bool, fractions: int = 10) -> np.ndarray:
    positive = [lambda y, mm, i=i: np.full(len(y), (i + 1) / (mm * (fractions + 1))) for i in range(fractions)]
    negative = [lambda y, mm, i=i: np.full(len(y), (i + 1) / ((1 - mm) * (fractions + 1))) for i in range(fractions)]
    return betting.diversified_betting_mart(
        x, m, positive, negative, theta=1.0 if above else 0.0, trunc_scale=1.0, convex_comb=True
    )


def fixed_n(x: np.ndarray) -> tuple[str, int]:
    head = x[:FIXED_N]
    z = (head.mean() - (0.5 - MARGIN)) / max(head.std() / math.sqrt(FIXED_N), 1e-12)
    return ("passed" if z > 1.645 else "failed"), FIXED_N


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    methods: dict[str, Callable[[np.ndarray], tuple[str, int]]] = {
        "assay": assay_decision,
        "PrPl-EB": lambda x: peer_decision(x, predmix),
        "aGRAPA": lambda x: peer_decision(x, agrapa),
        "dKelly": lambda x: peer_decision(x, dkelly),
        f"fixed n={FIXED_N}": fixed_n,
    }
    print("| mu | ties | " + " | ".join(f"{name}: decided right / mean / median" for name in methods) + " |")
    print("| --- | --- |" + " --- |" * len(methods))
    for ties in (0.3, 0.85):
        for mu in (0.40, 0.50, 0.55, 0.58):
            rng = np.random.default_rng([args.seed, int(mu * 100), int(ties * 100)])
            streams = [scores(rng, mu, ties, MAX_SAMPLES) for _ in range(args.runs)]
            right = "failed" if mu < 0.5 - MARGIN else "passed"
            cells = []
            for method in methods.values():
                outcomes = [method(x) for x in streams]
                pairs = np.array([n for _, n in outcomes])
                share = np.mean([verdict == right for verdict, _ in outcomes])
                cells.append(f"{share:.3f} / {pairs.mean():.0f} / {np.median(pairs):.0f}")
            print(f"| {mu:.2f} | {ties:.0%} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
