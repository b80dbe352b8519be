"""The LiteLLM sampler's choices and the recorder's sample parsing, specified by example (no text is logged)."""

from __future__ import annotations

import asyncio
import random

import pytest

from assay.watch import litellm_sampler, recorder


def logged_call(*, requested: str, group: str, tags: list[str] | None = None) -> dict[str, object]:
    """The kwargs LiteLLM 1.108.7's proxy hands a logging callback, the parts the sampler reads, as recorded from
    the real proxy: a request for an alias logs the alias as model_group and model_group_alias and the serving
    model_list entry as deployment_model_name; a request for a model group has no alias."""
    metadata: dict[str, object] = {"model_group": requested, "deployment_model_name": group, "tags": tags or []}
    if requested != group:
        metadata["model_group_alias"] = requested
    return {
        "model": group,
        "messages": [{"role": "user", "content": "Summarize the ticket."}],
        "litellm_params": {"metadata": metadata},
        "standard_logging_object": {"model_group": requested, "model": f"openai/{group}"},
    }


def sampler(rate: float) -> litellm_sampler.Sampler:
    made = litellm_sampler.Sampler(recorder_url="", token="t", rng=random.Random(1))
    made._routes = {"support-summary": {"group": "gpt-4o-mini", "rate": rate, "policy": "team/route"}}
    return made


def test_the_sampler_takes_only_the_promoted_arm_of_the_watched_route() -> None:
    take = sampler(1.0)
    assert asyncio.run(take.choose(logged_call(requested="support-summary", group="gpt-4o-mini"))) is not None
    assert asyncio.run(take.choose(logged_call(requested="support-summary", group="gpt-4o"))) is None
    assert asyncio.run(take.choose(logged_call(requested="gpt-4o-mini", group="gpt-4o-mini"))) is None


def test_the_sampler_never_takes_assays_own_calls() -> None:
    call = logged_call(requested="support-summary", group="gpt-4o-mini", tags=[litellm_sampler.ASSAY_TAG])
    assert asyncio.run(sampler(1.0).choose(call)) is None


def test_the_sampler_takes_about_its_rate() -> None:
    take = sampler(0.1)
    call = logged_call(requested="support-summary", group="gpt-4o-mini")
    taken = sum(asyncio.run(take.choose(call)) is not None for _ in range(2000))
    assert 150 < taken < 250


def test_the_served_answer_is_read_from_a_chat_completion() -> None:
    response = {"choices": [{"message": {"content": "Done."}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    assert litellm_sampler.answer_text(response) == "Done."
    assert litellm_sampler.usage_of(response) == {"prompt_tokens": 3, "completion_tokens": 1}
    assert litellm_sampler.answer_text({"choices": []}) is None


def test_a_sample_parses_into_messages_and_the_served_answer() -> None:
    sample = recorder.parse_sample(
        {
            "policy": "team/route",
            "group": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Q?"}],
            "response": "A.",
            "usage": {"prompt_tokens": 2, "completion_tokens": True},
        }
    )
    assert (sample.namespace, sample.policy, sample.group, sample.response) == ("team", "route", "gpt-4o-mini", "A.")
    assert sample.usage == {"prompt_tokens": 2}
    assert "Q?" not in repr(sample) and "A." not in repr(sample)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"policy": "route"}, "policy"),
        ({"policy": "team/route"}, "group"),
        ({"policy": "team/route", "group": "g", "messages": [{"role": "tool", "content": "x"}]}, "messages"),
        ({"policy": "team/route", "group": "g", "messages": [{"role": "user", "content": "x"}]}, "response"),
    ],
)
def test_a_malformed_sample_is_refused_naming_the_field(body: object, field: str) -> None:
    with pytest.raises(recorder.SampleError, match=f"^{field}:"):
        recorder.parse_sample(body)
