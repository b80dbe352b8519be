"""A numpy twin of the decision's statistical core, so that studies of thousands of runs take seconds.

The pure-Python `Qualification` is the product; this twin replays the same rules on arrays of many runs at
once: the position-corrected score, the dispersion-scaled mixture betting wealth of `sequential` (same
bets, same scales, same thresholds), the pass / BelowMargin / futility order of `decision`, min_samples and
max_samples, the swap-consistency guardrail's two sequential tests, the judge waiver, the repeat guardrail
and the scheduled looks of the always-on length guardrail (the same GLM: difficulty term, ridge, sandwich
bound). test_twin_matches_the_decision checks it against the real thing run by run. Controls are left out
(min_controls=0): the control guardrail is tested on the real code.
"""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np

from assay.qualification import decision, sequential

PASSED, FAILED, INCONCLUSIVE = 1, -1, 0
NEVER = np.iinfo(np.int64).max // 4


@dataclasses.dataclass(frozen=True)
class Pairs:
    """R runs of N non-control pairs: tested scores, whether both orders agreed, whether the answers agreed
    (judge-free), answer lengths (None: not measured) and whether the candidate repeated itself."""

    scores: np.ndarray
    consistent: np.ndarray
    chars_baseline: np.ndarray | None = None
    chars_candidate: np.ndarray | None = None
    agreed: np.ndarray | None = None
    repeated: np.ndarray | None = None


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
    agreement_rate: float = 0.0,
    prompt_independent: float = 0.0,
    exploit_win: float = 0.8,
    fingerprints: bool = False,
    lengths: bool | None = None,
    margin: float = 0.05,
    seed: int = 0,
) -> Pairs:
    """The record-level model of `assay.qualification.simulate`, drawn with numpy (verdicts per order).

    Lengths are drawn when `lengths` is true, or by default when the model involves them (a length ratio or
    a length bias); otherwise they are left unmeasured. Scores are the tested (position-corrected) ones.
    """
    rng = np.random.default_rng(seed)
    u = rng.random((runs, n))
    win = mu - tie_rate / 2
    meant = np.where(u < win, 1.0, np.where(u < win + tie_rate, 0.5, 0.0))  # candidate's points
    base = cand = None
    if lengths or (lengths is None and (length_bias or length_ratio != 1.0)):
        base = np.maximum(1, np.round(800.0 * np.exp(rng.normal(0.0, 0.4, (runs, n)))))
        cand = np.maximum(1, np.round(base * length_ratio * np.exp(rng.normal(0.0, length_spread, (runs, n)))))
        diff = cand - base
        pull = length_bias * np.tanh(np.abs(diff) / length_scale)
        meant = np.where(rng.random((runs, n)) < pull, np.where(diff > 0, 1.0, 0.0), meant)
    exploit = rng.random((runs, n)) < prompt_independent
    meant = np.where(exploit, np.where(rng.random((runs, n)) < exploit_win, 1.0, 0.0), meant)
    agreed = (rng.random((runs, n)) < agreement_rate) & ~exploit
    meant = np.where(agreed, 0.5, meant)
    first = np.where(rng.random((runs, n)) < position_bias, 1.0, meant)  # candidate shown first
    second = np.where(rng.random((runs, n)) < position_bias, 0.0, meant)  # baseline shown first
    first, second = np.where(agreed, 0.5, first), np.where(agreed, 0.5, second)
    raw = (first + second) / 2
    # Position advantage: +1 per order the answer shown first won, -1 per order it lost, halved.
    advantage = (np.sign(first - 0.5) + np.sign(0.5 - second)) / 2
    scores = np.clip(raw - margin * advantage, 0.0, 1.0)
    repeated = None
    if prompt_independent or fingerprints:
        repeated = exploit & (np.cumsum(exploit, axis=1) > 1)
    return Pairs(scores, (first == second) | agreed, base, cand, agreed, repeated)


def scale_levels(scores: np.ndarray) -> np.ndarray:
    """The bet scale level before each score (from the dispersion of the earlier scores), as `sequential`."""
    runs, n = scores.shape
    before = np.concatenate([np.zeros((runs, 1)), np.cumsum((scores - 0.5) ** 2, axis=1)[:, :-1]], axis=1)
    ref, prior = sequential.REFERENCE_DISPERSION, sequential.PRIOR_SCORES
    estimate = (ref * prior + before) / (prior + np.arange(n))
    low, high = sequential.SCALE_LEVELS
    return np.clip(np.round(np.log2(ref / np.maximum(estimate, 1e-12)) / sequential.SCALE_STEP), low, high)


def first_crossing(
    y: np.ndarray,
    levels: np.ndarray,
    *,
    m: float | np.ndarray,
    level: float,
    bets: tuple[float, ...],
    weights: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Per run, the first n at which the mixture wealth betting on y above m reaches 1/level; NEVER if not."""
    scale = 2.0 ** (levels * sequential.SCALE_STEP)
    shares = np.ones(len(bets)) if weights is None else np.asarray(weights, dtype=float)
    shares = shares / shares.sum()
    wealth = np.zeros(y.shape)
    for bet, share in zip(bets, shares, strict=True):
        c = np.minimum(sequential.MAX_FRACTION, bet * scale)
        wealth += share * np.exp(np.minimum(np.cumsum(np.log(1.0 - c + c * y / m), axis=1), 700.0))
    hit = wealth >= 1.0 / level
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, NEVER)


def rate_crossing(hits: np.ndarray, counted: np.ndarray, *, m: float, level: float) -> np.ndarray:
    """Per run, the first pair index (1-based) at which RateBounds' lower bound of the rate of `hits` (over
    the pairs where `counted`) reaches m; NEVER if not."""
    y = np.where(counted, hits.astype(float), m)  # a pair not counted leaves the wealth unchanged
    ones = np.zeros(y.shape)
    return first_crossing(y, ones, m=m, level=level, bets=sequential.RateBounds.BETS)


def length_lower_bounds(pairs: Pairs, upto: int, *, level: float, ridge: float) -> np.ndarray:
    """Per run, the length-controlled lower bound over its first `upto` pairs, as `length_control` has it."""
    return length_bounds(pairs, upto, level=level, ridge=ridge)[0]


def length_bounds(pairs: Pairs, upto: int, *, level: float, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the length-controlled (lower, upper) bounds over its first `upto` pairs, as `length_control`."""
    assert pairs.chars_baseline is not None and pairs.chars_candidate is not None
    base = pairs.chars_baseline[:, :upto]
    diff = pairs.chars_candidate[:, :upto] - base
    spread = diff.std(axis=1, keepdims=True)
    x = np.tanh(diff / np.where(spread > 0, spread, 1.0))
    log_base = np.log(np.maximum(base, 1))
    z_spread = log_base.std(axis=1, keepdims=True)
    z = (log_base - log_base.mean(axis=1, keepdims=True)) / np.where(z_spread > 0, z_spread, 1.0)
    s = pairs.scores[:, :upto]
    design = np.stack([np.ones_like(x), x, z], axis=2)  # R x n x 3
    penalty = np.diag([0.0, ridge, ridge])
    mean = s.mean(axis=1)
    theta = np.zeros((len(s), 3))
    theta[:, 0] = np.log(mean / (1 - mean))
    for _ in range(12):  # Newton from the mean: converged well before
        p = 1 / (1 + np.exp(-np.einsum("rnk,rk->rn", design, theta)))
        gradient = np.einsum("rnk,rn->rk", design, s - p) - theta @ penalty
        hessian = np.einsum("rnk,rn,rnl->rkl", design, p * (1 - p), design) + penalty
        theta = theta + np.linalg.solve(hessian, gradient[..., None])[..., 0]
    fitted = 1 / (1 + np.exp(-np.einsum("rnk,rk->rn", design, theta)))
    hessian = np.einsum("rnk,rn,rnl->rkl", design, fitted * (1 - fitted), design) + penalty
    meat = np.einsum("rnk,rn,rnl->rkl", design, (s - fitted) ** 2, design)
    at_equal = 1 / (1 + np.exp(-(theta[:, :1] + theta[:, 2:3] * z)))
    estimate = at_equal.mean(axis=1)
    slopes = at_equal * (1 - at_equal)
    grad = np.stack([slopes.mean(1), np.zeros(len(s)), (slopes * z).mean(1)], axis=1)
    direction = np.linalg.solve(hessian, grad[..., None])[..., 0]
    variance = np.einsum("rk,rkl,rl->r", direction, meat, direction)
    logit_se = np.sqrt(np.maximum(variance, 0)) / (estimate * (1 - estimate))
    quantile = statistics.NormalDist().inv_cdf(1 - level)
    logit = np.log(estimate / (1 - estimate))
    return 1 / (1 + np.exp(-(logit - quantile * logit_se))), 1 / (1 + np.exp(-(logit + quantile * logit_se)))


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
    runs, n = pairs.scores.shape
    horizon = min(n, settings.max_samples)
    scores = pairs.scores[:, :horizon]
    mixture = {"bets": tuple(settings.bets), "weights": settings.bet_weights}
    levels = scale_levels(scores)
    m0 = settings.null_mean
    up = first_crossing(scores, levels, m=m0, level=settings.pass_level, **mixture)
    down = first_crossing(1 - scores, levels, m=1 - m0, level=settings.alpha, **mixture)
    futile = np.full(runs, NEVER)
    if settings.futility:
        futile = first_crossing(
            1 - scores, levels, m=0.5, level=settings.alpha * settings.futility_alpha_share, **mixture
        )
    failed_at = np.minimum(down, futile)
    failed = failed_at < up
    verdict = np.full(runs, INCONCLUSIVE)
    samples = np.full(runs, horizon)
    reason = np.full(runs, "Undecided", dtype=object)
    verdict[failed] = FAILED
    samples[failed] = failed_at[failed]
    reason[failed] = np.where(down[failed] <= futile[failed], "BelowMargin", "WorseThanBaseline")

    # The judge waiver: the same test with judged pairs scored 0.
    agreed = pairs.agreed[:, :horizon] if pairs.agreed is not None else np.zeros((runs, horizon), dtype=bool)
    free = np.where(agreed, 0.5, 0.0)
    waived = first_crossing(free, scale_levels(free), m=m0, level=settings.pass_level, **mixture)
    # The swap guardrail: violated when the upper bound falls below the limit, ok when the lower bound clears
    # the floor with the minimum of judged pairs; whichever comes first.
    judged = ~agreed
    consistent = pairs.consistent[:, :horizon]
    level = settings.guardrail_level
    limit = settings.swap_consistency_min
    violated = rate_crossing(~consistent, judged, m=1 - limit, level=level) if limit > 0 else np.full(runs, NEVER)
    floor = min(settings.judge_floor, limit)
    ok = rate_crossing(consistent, judged, m=floor, level=level) if floor > 0 else np.ones(runs, dtype=np.int64)
    enough = np.cumsum(judged, axis=1) >= max(settings.min_judged_pairs, 1)
    minimum = np.where(enough.any(axis=1), enough.argmax(axis=1) + 1, NEVER)
    ok = np.maximum(ok, minimum)
    swap_violated = np.where(violated <= ok, violated, NEVER)
    swap_settled = np.minimum(np.minimum(swap_violated, ok), waived)

    settle = np.maximum(up, settings.min_samples)
    passes = ~failed & (settle <= horizon)
    ready = np.maximum(settle, swap_settled)
    bad_swap = passes & (swap_violated <= ready) & (swap_violated < waived)
    verdict[bad_swap] = FAILED
    samples[bad_swap] = ready[bad_swap]
    reason[bad_swap] = "SwapInconsistent"
    unresolved = passes & ~bad_swap & (ready > horizon)
    reason[unresolved] = "InsufficientJudgedPairs"
    going = passes & ~bad_swap & ~unresolved

    repeat_violated = np.full(runs, NEVER)
    if pairs.repeated is not None:
        repeat_violated = rate_crossing(pairs.repeated[:, :horizon], ~agreed, m=settings.repeat_share_max, level=level)

    cleared = np.full(runs, NEVER)
    final_ok = np.ones(runs, dtype=bool)
    final_bad = np.zeros(runs, dtype=bool)  # the last look's upper bound is below m0 too
    if pairs.chars_baseline is not None:
        for look, look_level in zip(settings.length_looks, settings.length_look_levels, strict=True):
            if look > horizon:
                break
            todo = going & (cleared == NEVER)
            if todo.any():
                lower = length_lower_bounds(_rows(pairs, todo), look, level=look_level, ridge=settings.length_ridge)
                cleared[np.flatnonzero(todo)[lower > m0]] = look
        todo = going & (cleared == NEVER)
        if todo.any():
            lower, upper = length_bounds(
                _rows(pairs, todo), horizon, level=settings.length_level, ridge=settings.length_ridge
            )
            final_ok[np.flatnonzero(todo)] = lower > m0
            final_bad[np.flatnonzero(todo)] = upper < m0
    else:
        cleared = np.ones(runs, dtype=np.int64)
    length_at = np.maximum(ready, cleared)
    repeat_first = going & (repeat_violated <= np.minimum(length_at, horizon)) & (repeat_violated < NEVER)
    at = np.maximum(ready, repeat_violated)
    verdict[repeat_first] = FAILED
    samples[repeat_first] = at[repeat_first]
    reason[repeat_first] = "PromptIndependent"
    going &= ~repeat_first
    passed = going & (length_at <= horizon)
    verdict[passed] = PASSED
    samples[passed] = length_at[passed]
    reason[passed] = "NonInferior"
    final = going & ~passed
    verdict[final & final_ok] = PASSED
    reason[final & final_ok] = "NonInferior"
    verdict[final & final_bad] = FAILED
    reason[final & final_bad] = "LengthBiased"
    reason[final & ~final_ok & ~final_bad] = "LengthUnresolved"  # Inconclusive: the bounds straddle m0
    samples[final] = horizon
    return Outcome(verdict, samples, reason)


def _rows(pairs: Pairs, rows: np.ndarray) -> Pairs:
    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[rows]

    return Pairs(
        pairs.scores[rows],
        pairs.consistent[rows],
        pick(pairs.chars_baseline),
        pick(pairs.chars_candidate),
        pick(pairs.agreed),
        pick(pairs.repeated),
    )
