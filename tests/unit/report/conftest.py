"""Synthetic evidence for report tests: simulated verdicts plus the token and latency extras the evaluator
writes, so cost and latency per request are measurable."""

from __future__ import annotations

import dataclasses
import random

import pytest

from assay.qualification import decision, evidence, simulate

SCENARIO = simulate.Scenario(
    mu=0.56, control_rate=0.08, agreement_rate=0.1, format_pass_baseline=0.98, format_pass_candidate=0.97
)


def with_usage(records: list[evidence.EvidenceRecord], *, seed: int = 0) -> list[evidence.EvidenceRecord]:
    """The records with `tokens` and `latency_ms` extras: the candidate answers faster, at similar length."""
    rng = random.Random(seed)
    out = []
    for record in records:
        extra = {
            "tokens": {
                "baseline": {"prompt": 300, "completion": rng.randint(150, 250)},
                "candidate": {"prompt": 300, "completion": rng.randint(150, 250)},
            },
            "latency_ms": {"baseline": rng.uniform(900, 1500), "candidate": rng.uniform(300, 700)},
        }
        out.append(dataclasses.replace(record, extra=extra))
    return out


@pytest.fixture(scope="session")
def passing_records() -> list[evidence.EvidenceRecord]:
    """A candidate a little better than the baseline, with controls, agreements and format checks."""
    return with_usage(simulate.simulate_evidence(500, SCENARIO, seed=3))


@pytest.fixture(scope="session")
def settings() -> decision.TestSettings:
    return decision.TestSettings()
