"""The report shows the prompt that qualified: the candidate's system prompt, its content hash (the gateway's
prompt arm names it), its diff against the baseline's, and the optimizer's split and variants only when the
run carries them. Prompt text is user text: escaped in HTML, fenced in Markdown, never logged."""

from __future__ import annotations

import html.parser
import json
import logging
import re

import pytest

from assay.gateways import interface, litellm_config
from assay.optimize import checkpoint, driver, split
from assay.report import cluster, content, render

HOSTILE = (
    "You are terse.\n"
    "Give only the final answer.\n"
    '</pre><script>alert("x")</script> & <b>bold</b>\n'
    "```\n"
    "``````js\n"
    "| a | b |\n"
    "~~~\n"
    "    ````````"
)
BASELINE = "You are terse.\nThink step by step."


class Blocks(html.parser.HTMLParser):
    """The text of every element with an id, and the tags seen."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: dict[str, str] = {}
        self.tags: set[str] = set()
        self._open: list[str | None] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag in ("meta", "img", "br", "link"):
            return
        element_id = dict(attrs).get("id")
        self._open.append(element_id)
        if element_id:
            self.text[element_id] = ""

    def handle_endtag(self, tag):
        if tag not in ("meta", "img", "br", "link") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for element_id in self._open:
            if element_id:
                self.text[element_id] += data


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(info, text) of every backtick-fenced code block, by CommonMark's rules: an opening fence of 3 or more
    backticks indented at most 3 spaces, closed by a line of at least as many backticks and nothing else."""
    blocks, lines, i = [], markdown.split("\n"), 0
    while i < len(lines):
        opening = re.match(r" {0,3}(`{3,})([^`]*)$", lines[i])
        if not opening:
            i += 1
            continue
        fence, body, i = opening.group(1), [], i + 1
        while i < len(lines) and not re.fullmatch(" {0,3}" + fence + r"`*[ \t]*", lines[i]):
            body.append(lines[i])
            i += 1
        assert i < len(lines), "a fenced block is never closed"
        blocks.append((opening.group(2).strip(), "\n".join(body)))
        i += 1
    return blocks


def _report(records, settings, *, prompts, **kwargs):
    return content.build(
        records,
        settings,
        name="cheap-optimized",
        source="test",
        baseline_model="gpt-4o",
        candidate_model="gpt-4o-mini",
        prompts=prompts,
        **kwargs,
    )


@pytest.fixture(scope="module")
def prompted(passing_records, settings) -> content.Report:
    prompts = content.Prompts(candidate=HOSTILE, baseline=BASELINE, candidate_model="gpt-4o-mini")
    return _report(passing_records, settings, prompts=prompts)


@pytest.fixture(scope="module")
def prompted_html(prompted) -> str:
    return render.to_html(prompted)


def test_the_hash_is_the_one_the_gateway_arm_and_status_name(prompted):
    rows = dict(content.prompt_rows(prompted))

    assert rows["Content hash"] == interface.prompt_digest(HOSTILE)
    arm = litellm_config.arm_name("gpt-4o-mini", HOSTILE)
    assert rows["LiteLLM model group serving it (status.activeRoute.model)"] == arm
    assert arm.endswith(interface.prompt_digest(HOSTILE).removeprefix("sha256:"))
    assert prompted.verdict == "passed" and content.prompt_title(prompted) == "The prompt that qualified"
    summary = dict(content.summary_rows(prompted))
    assert summary["Candidate system prompt"] == f"{interface.prompt_digest(HOSTILE)} (below)"


def test_html_shows_the_prompt_exactly_and_escaped(prompted_html):
    page = Blocks(prompted_html)

    assert page.text["candidate-prompt"] == "\n" + HOSTILE  # the parser keeps the newline a browser drops
    assert "script" not in page.tags and "b" not in page.tags
    assert '<script>alert("x")</script>' not in prompted_html
    assert "&lt;/pre&gt;&lt;script&gt;" in prompted_html
    assert interface.prompt_digest(HOSTILE) in page.text["prompt-table"]


def test_html_diff_against_the_baseline_marks_removed_and_added_lines(prompted_html):
    page = Blocks(prompted_html)
    diff = page.text["prompt-diff"].splitlines()[1:]

    assert diff[:2] == ["--- baseline system prompt", "+++ candidate system prompt"]
    assert " You are terse." in diff and "-Think step by step." in diff and "+Give only the final answer." in diff
    assert '<span class="del">-Think step by step.</span>' in prompted_html
    assert '<span class="add">+Give only the final answer.</span>' in prompted_html


def test_markdown_fences_hold_the_prompt_and_the_diff_whatever_backticks_it_has(prompted):
    markdown = render.to_markdown(prompted)
    blocks = fenced_blocks(markdown)

    assert ("text", HOSTILE) in blocks
    diff = dict(blocks)["diff"].splitlines()
    assert "-Think step by step." in diff and "+" + HOSTILE.splitlines()[-1] in diff
    # Outside the fences, the tables still parse: every table line has its cells.
    outside = re.sub(r"(?ms)^(`{3,}).*?^\1`*$", "", markdown)
    assert "<script" not in outside
    assert "| Content hash | sha256:" in markdown
    # The prompt did not open or close anything: the sections after it are still headings.
    assert "\n## Guardrails\n" in markdown and "\n## Cost and latency\n" in markdown


def test_json_carries_the_prompts_hash_and_diff(prompted):
    data = json.loads(render.to_json(prompted))

    assert data["prompts"]["candidate"] == HOSTILE and data["prompts"]["baseline"] == BASELINE
    assert data["prompts"]["digest"] == interface.prompt_digest(HOSTILE)
    assert data["prompts"]["diff"] == prompted.prompts.diff
    assert data["split"] is None and data["variants"] == []


def test_a_baseline_without_a_prompt_is_said_and_no_diff_is_drawn(passing_records, settings):
    report = _report(passing_records, settings, prompts=content.Prompts(candidate="Be brief.", baseline=None))

    page = Blocks(render.to_html(report))
    markdown = render.to_markdown(report)

    assert page.text["prompt-comparison"] == "The baseline has no system prompt."
    assert "prompt-diff" not in page.text
    assert "The baseline has no system prompt." in markdown
    assert [info for info, _ in fenced_blocks(markdown)] == ["text"]


def test_a_candidate_without_a_prompt_says_so(passing_records, settings):
    report = _report(passing_records, settings, prompts=content.Prompts(candidate=None, baseline=None))

    rows = dict(content.prompt_rows(report))
    markdown = render.to_markdown(report)

    assert rows == {"Candidate system prompt": "none: the recorded messages are sent as they are"}
    assert "The baseline has no system prompt." in markdown and fenced_blocks(markdown) == []


def test_prompts_that_differ_only_in_line_breaks_are_not_called_changes():
    same = content.Prompts(candidate="a\nb", baseline="a\nb")
    breaks = content.Prompts(candidate="a\r\nb\n", baseline="a\nb")

    assert same.comparison == "The candidate's system prompt is the same as the baseline's." and same.diff == []
    assert breaks.diff == [] and "only in line breaks" in breaks.comparison


def test_without_the_runs_spec_nothing_is_said_about_prompts_split_or_variants(passing_records, settings):
    report = _report(passing_records, settings, prompts=None)

    page = Blocks(render.to_html(report))
    markdown = render.to_markdown(report)

    assert not {"prompt", "split", "variants"} & set(page.text)
    assert "Candidate system prompt" not in dict(content.summary_rows(report))
    assert "system prompt" not in markdown and "## Dataset split" not in markdown
    assert "## Optimizer variants" not in markdown


def test_the_split_and_variants_are_shown_when_the_run_carries_them(passing_records, settings):
    ids = [f"t-{i:04d}" for i in range(500)]
    the_split = split.split(ids, seed=11)
    optimized = "Give only the final answer."
    variants = [
        {"sha": checkpoint.prompt_sha(""), "train_score": 0.41, "train_records": 30, "validation_score": 0.43,
         "validation_records": 100, "format_ok": True},
        {"sha": checkpoint.prompt_sha(optimized), "train_score": 0.58, "train_records": 30, "validation_score": 0.55,
         "validation_records": 100, "format_ok": True},
        {"sha": checkpoint.prompt_sha("Think step by step."), "train_score": 0.3, "train_records": 9,
         "validation_score": None, "validation_records": 0, "format_ok": False},
    ]  # fmt: skip
    report = _report(
        passing_records,
        settings,
        prompts=content.Prompts(candidate=optimized, baseline=None),
        split=the_split.status(),
        variants=variants,
    )

    split_rows = dict(content.split_rows(report))
    variant_rows = content.variant_rows(report)
    page = Blocks(render.to_html(report))
    markdown = render.to_markdown(report)

    assert split_rows["Train"].startswith("200 records") and split_rows["Holdout"].startswith("200 records, share 0.4")
    assert split_rows["Validation"].startswith("100 records, share 0.2")
    assert split_rows["Seed / digest"] == f"11 / {the_split.digest[:12]}"
    assert [row[4] for row in variant_rows] == ["", "yes", ""]
    assert variant_rows[0][:4] == (
        f"as written ({checkpoint.prompt_sha('')[:12]})",
        "0.410 on 30",
        "0.430 on 100",
        "kept",
    )
    assert variant_rows[2][1:4] == ("0.300 on 9", "n/a on 0", "broken")
    assert "split-table" in page.text and "variant-table" in page.text
    assert "## Dataset split" in markdown and "## Optimizer variants" in markdown
    data = json.loads(render.to_json(report))
    assert data["split"]["sizes"] == the_split.sizes and len(data["variants"]) == 3


def test_prompt_text_is_never_logged(passing_records, settings, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Never log me: the optimized instructions 7f3a."
    report = _report(passing_records, settings, prompts=content.Prompts(candidate=secret, baseline="Old text 91c."))

    for renderer in render.RENDERERS.values():
        assert secret in renderer(report)

    assert secret not in caplog.text and "Old text 91c." not in caplog.text


def test_a_run_report_from_the_cluster_carries_its_spec_prompts(monkeypatch, passing_records):
    spec = {
        "endpoint": {"url": "http://litellm:4000/v1"},
        "baseline": {"model": "gpt-4o"},
        "candidate": {"name": "mini", "model": "gpt-4o-mini", "systemPrompt": "Give only the final answer."},
        "dataset": {"configMapRef": {"name": "data", "key": "data.jsonl"}},
        "judge": {"model": "judge"},
    }
    run = {"metadata": {"namespace": "ns", "name": "run"}, "spec": spec, "status": {"phase": "Passed"}}
    shards = {0: [r.to_dict() for r in passing_records]}
    monkeypatch.setattr(cluster, "get", lambda kind, namespace, name: run)
    monkeypatch.setattr(cluster.kube, "core", lambda: None)
    monkeypatch.setattr(cluster.evidence_store, "read_evidence_configmaps", lambda api, ns, name: (shards, {}))

    report = cluster.run_report("ns", "run")

    assert report.prompts == content.Prompts(
        candidate="Give only the final answer.", baseline=None, candidate_model="gpt-4o-mini"
    )
    assert dict(content.prompt_rows(report))["Content hash"] == interface.prompt_digest("Give only the final answer.")


def test_the_optimizers_own_variants_are_taken_as_they_are(passing_records, settings):
    scored = driver.Variant(
        sha=checkpoint.prompt_sha(""),
        train_score=0.5,
        train_records=12,
        validation_score=0.25,
        validation_records=8,
        format_ok=True,
    )
    report = _report(
        passing_records, settings, prompts=content.Prompts(candidate=None, baseline=None), variants=[scored]
    )

    assert content.variant_rows(report) == [
        (f"as written ({scored.sha[:12]})", "0.500 on 12", "0.250 on 8", "kept", "yes")
    ]
