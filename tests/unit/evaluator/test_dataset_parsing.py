"""The dataset contract: JSON Lines records, malformed lines reported by 1-based line number and reason,
and the three sources (path, URL, ConfigMap key)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest
from aiohttp import web

from assay import httpclient
from assay.api import evaluation
from assay.evaluator import dataset, errors, sources

USER = [{"role": "user", "content": "What is a canary?"}]


def line(**fields: object) -> str:
    return json.dumps(fields)


def test_valid_records_keep_file_order_and_optional_fields():
    text = "\n".join(
        [
            line(id="a", messages=USER),
            line(
                id="b",
                messages=[{"role": "system", "content": "Be brief."}, *USER],
                baseline_response="A small rollout.",
                reference="A partial rollout.",
                metadata={"team": "x"},
            ),
        ]
    )
    parsed = dataset.parse_jsonl(text)
    assert parsed.invalid == []
    assert [r.id for r in parsed.records] == ["a", "b"]
    second = parsed.records[1]
    assert (second.line, second.baseline_response, second.reference, second.metadata) == (
        2,
        "A small rollout.",
        "A partial rollout.",
        {"team": "x"},
    )
    assert parsed.records[0].baseline_response is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (line(messages=USER), "missing 'id'"),
        (line(id=7, messages=USER), "'id' must be a non-empty string"),
        (line(id="x", messages=[]), "'messages' must be a non-empty list"),
        (line(id="x", messages=[{"role": "tool", "content": "hi"}]), "messages[0].role must be one of"),
        (line(id="x", messages=[{"role": "user", "content": 5}]), "messages[0].content must be a string"),
        (line(id="x", messages=[*USER, {"role": "assistant", "content": "ok"}]), "last message must have role user"),
        (line(id="x", messages=USER, baseline_response=3), "'baseline_response' must be a string"),
        (line(id="x", messages=USER, metadata=[1]), "'metadata' must be an object"),
    ],
)
def test_malformed_line_is_reported_with_its_line_number_and_reason(raw, reason):
    parsed = dataset.parse_jsonl("\n".join([line(id="ok", messages=USER), raw, line(id="ok2", messages=USER)]))
    assert [r.id for r in parsed.records] == ["ok", "ok2"]
    assert len(parsed.invalid) == 1
    assert parsed.invalid[0].line == 2
    assert reason in parsed.invalid[0].reason


def test_duplicate_id_makes_the_later_line_malformed():
    parsed = dataset.parse_jsonl("\n".join([line(id="a", messages=USER), "", line(id="a", messages=USER)]))
    assert [r.line for r in parsed.records] == [1]
    assert parsed.invalid == [dataset.InvalidLine(3, "duplicate id 'a' (first on line 1)")]


def test_blank_lines_are_skipped_without_report_and_do_not_shift_line_numbers():
    parsed = dataset.parse_jsonl("\n\n" + line(id="a", messages=USER) + "\r\n   \n{bad\n")
    assert [r.line for r in parsed.records] == [3]
    assert [i.line for i in parsed.invalid] == [5]


def test_unicode_line_separator_inside_a_string_is_not_a_line_break():
    parsed = dataset.parse_jsonl(line(id="a", messages=[{"role": "user", "content": "one\u2028two"}]))
    assert parsed.invalid == []
    assert parsed.records[0].messages[0]["content"] == "one\u2028two"


def test_content_parts_are_accepted():
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert dataset.parse_jsonl(line(id="a", messages=parts)).records[0].messages == parts


async def test_missing_path_is_a_permanent_error_naming_the_path(tmp_path: pathlib.Path):
    load = sources.make_loader()
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(errors.DatasetSourceError, match=re.escape(str(missing))) as caught:
        await load(evaluation.Dataset(path=str(missing)))
    assert caught.value.exit_code == errors.EXIT_PERMANENT
    assert caught.value.reason == "DatasetNotFound"


async def test_url_source_is_fetched_through_the_retry_policy():
    served = []

    async def handler(request: web.Request) -> web.Response:
        served.append(request.path)
        if len(served) < 3:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(text=line(id="a", messages=USER) + "\n")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/data.jsonl", handler)
    app.router.add_get("/missing.jsonl", missing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        load = sources.make_loader(policy=httpclient.RetryPolicy(max_attempts=4, base_delay=0.001))
        text = await load(evaluation.Dataset(url=f"http://{host}:{port}/data.jsonl"))
        assert [r.id for r in dataset.parse_jsonl(text).records] == ["a"]
        assert len(served) == 3
        # A dataset URL may be presigned: the message names scheme and host only, never the path or query.
        with pytest.raises(errors.DatasetSourceError, match=rf"dataset\.url http://{host}:{port}: HTTP 404") as e:
            await load(evaluation.Dataset(url=f"http://{host}:{port}/missing.jsonl?X-Amz-Signature=s3cr3t"))
        assert "missing.jsonl" not in str(e.value) and "s3cr3t" not in str(e.value)
    finally:
        await runner.cleanup()


async def test_config_map_source_without_kubernetes_access_is_a_clear_error():
    load = sources.make_loader()
    ref = {"name": "prompts", "key": "data.jsonl"}
    with pytest.raises(errors.DatasetSourceError, match=r"dataset\.configMapRef prompts: no Kubernetes access"):
        await load(evaluation.Dataset.model_validate({"configMapRef": ref}))
