"""The whole qualification path with real parts: a RoutePolicy makes one QualificationRun per candidate, the
operator launches batch Jobs, the local executor runs the evaluator as the Jobs' pods, evaluation traffic goes
through a real LiteLLM proxy to the simulated models, and the sequential test decides."""

from __future__ import annotations

import pytest

import realparts
from assaylab import litellm, simulator
from assaylab.stack import LocalStack
from conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]

FINAL = {"Passed", "Failed", "Inconclusive", "Error"}


def test_equal_candidate_passes_and_worse_one_fails_early(tmp_path):
    samples = 600  # the equal candidate passes at a look of the length guardrail (here 400), well before the end
    with LocalStack(namespace="qual", workdir=tmp_path) as stack:
        stack.put_dataset("prompts", simulator.make_dataset(samples, seed=11))
        stack.create(
            stack.policy("support", qualification={"test": {"maxSamples": samples}}, promotion={"automatic": False})
        )

        def decided():
            runs = stack.list_runs()
            return len(runs) == 2 and all((r.get("status") or {}).get("phase") in FINAL for r in runs) and runs

        runs = {r["metadata"]["labels"]["assay.dev/candidate"]: r for r in wait_for(decided, timeout=420, interval=2)}
        good, bad = runs["mini"]["status"], runs["tiny"]["status"]
        assert good["phase"] == "Passed", good
        assert bad["phase"] == "Failed", bad
        for st in (good, bad):
            stats = st["statistics"]
            assert stats["lowerBound"] <= stats["estimate"] <= stats["upperBound"]
            assert st["decidedAtSample"] < samples, "the test decided before the data ran out"
            assert stats["judgeCalls"]["made"] > 0
            assert stats["costPerRequest"]["candidate"] < stats["costPerRequest"]["baseline"]
        assert good["statistics"]["lowerBound"] > 0.45
        assert bad["statistics"]["upperBound"] < 0.5

        policy = wait_for(
            lambda: (p := stack.get("RoutePolicy", "support")).get("status", {}).get("bestCandidate") and p, timeout=30
        )
        assert policy["status"]["bestCandidate"] == "mini"
        assert policy["status"]["phase"] == "Qualified"
