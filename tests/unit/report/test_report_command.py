"""`assay report --evidence`: offline reports from evidence files or directories, with the run's settings."""

from __future__ import annotations

import io
import json
import pathlib

import pytest

from assay import cli
from assay.evaluator import sinks
from assay.qualification import decision
from assay.report import command

REPO = pathlib.Path(__file__).resolve().parents[3]


def _write(path: pathlib.Path, records) -> pathlib.Path:
    path.write_text("".join(r.to_json() + "\n" for r in records))
    return path


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = command.main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_offline_report_writes_html_markdown_and_json_by_extension(tmp_path, passing_records):
    evidence = _write(tmp_path / "run.jsonl", passing_records)
    expected = decision.decide(passing_records, decision.TestSettings())

    for name in ("report.html", "report.md", "report.json"):
        status, _, err = _run("--evidence", str(evidence), "-o", str(tmp_path / name))
        assert status == 0, err
        assert "PASSED (NonInferior)" in err

    assert '<figure id="plot-bounds">' in (tmp_path / "report.html").read_text()
    assert f"| Lower bound (level alpha/K) | {expected.stats['lower']:.3f} |" in (tmp_path / "report.md").read_text()
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["verdict"] == expected.verdict and data["stats"]["lower"] == expected.stats["lower"]
    assert data["name"] == "run.jsonl"


def test_offline_report_to_stdout_honours_format_and_setting_flags(tmp_path, passing_records):
    evidence = _write(tmp_path / "run.jsonl", passing_records)
    settings = decision.TestSettings(margin=0.02, min_samples=20)

    status, out, _ = _run("--evidence", str(evidence), "--format", "json", "--margin", "0.02", "--min-samples", "20")

    data = json.loads(out)
    expected = decision.decide(passing_records, settings)
    assert status == 0
    assert data["settings"]["margin"] == 0.02 and data["settings"]["min_samples"] == 20
    assert (data["verdict"], data["stats"]["records"]) == (expected.verdict, expected.stats["records"])


def test_spec_file_supplies_the_runs_settings_models_and_prices(tmp_path, passing_records):
    evidence = _write(tmp_path / "run.jsonl", passing_records)
    spec = REPO / "examples" / "qualificationrun.yaml"  # maxSamples 400, gpt-4o against gpt-4o-mini

    status, out, _ = _run("--evidence", str(evidence), "--spec", str(spec), "--format", "json")

    data = json.loads(out)
    assert status == 0
    assert data["settings"]["max_samples"] == 400
    assert (data["baseline_model"], data["candidate_model"]) == ("gpt-4o", "gpt-4o-mini")
    assert data["cost"]["cost"]["baseline"] > data["cost"]["cost"]["candidate"] > 0  # built-in price table


def test_evidence_directory_uses_the_longest_complete_prefix_of_its_shards(tmp_path, passing_records):
    directory = tmp_path / "evidence"
    for shard in (0, 1):
        sink = sinks.FileSink(directory, shard)
        sink.write_chunk([r.to_dict() for r in passing_records[shard::2][:100]])
    # Shard 0 runs ahead (200, 202, ...) while shard 1 has not written 201: the prefix ends after 200.
    sinks.FileSink(directory, 0).write_chunk([r.to_dict() for r in passing_records[200:260:2]])

    records = command.evidence_records(str(directory))

    assert [r.seq for r in records] == list(range(201))
    assert records == passing_records[:201]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"seq": 0, "id": "a", "control": false}', 'run.jsonl:1: missing field "agreement"'),
        ("not json", "run.jsonl:1: not valid JSON"),
    ],
)
def test_malformed_evidence_is_named_with_its_line_and_exits_2(tmp_path, line, message):
    evidence = tmp_path / "run.jsonl"
    evidence.write_text(line + "\n")

    status, out, err = _run("--evidence", str(evidence))

    assert status == 2 and out == ""
    assert message in err


def test_setting_out_of_range_is_refused_naming_it(tmp_path, passing_records):
    evidence = _write(tmp_path / "run.jsonl", passing_records)

    status, _, err = _run("--evidence", str(evidence), "--margin", "0.6")

    assert status == 2
    assert "margin must be in (0, 0.5)" in err


def test_a_run_report_takes_no_offline_settings(capsys):
    with pytest.raises(SystemExit) as exit_:
        command.main(["my-run", "--margin", "0.1"])

    assert exit_.value.code == 2
    assert "--margin: only with --evidence" in capsys.readouterr().err


def test_report_needs_a_run_or_evidence(capsys):
    with pytest.raises(SystemExit):
        command.main([])

    assert "give either RUN" in capsys.readouterr().err


def test_format_follows_the_output_extension_unless_given():
    assert command.output_format(None, "x.md") == "md"
    assert command.output_format(None, "x.JSON") == "json"
    assert command.output_format(None, "x.html") == "html"
    assert command.output_format(None, None) == "html"
    assert command.output_format("md", "x.html") == "md"


def test_assay_cli_routes_report(tmp_path, passing_records, capsys):
    evidence = _write(tmp_path / "run.jsonl", passing_records)

    status = cli.main(["report", "--evidence", str(evidence), "--format", "md"])

    assert status == 0
    assert capsys.readouterr().out.startswith("# Qualification report: run.jsonl")
