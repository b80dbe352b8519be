"""`assay analyze`: decisions recomputed from evidence files, exit codes 0 and 2, and the --json lines."""

from __future__ import annotations

import io
import json
import pathlib
import subprocess
import sys

import pytest

from assay.qualification import analyze, decision, simulate

REQUIRED = (
    "file",
    "decision",
    "reason",
    "samples",
    "estimate",
    "lower",
    "upper",
    "swap_consistency",
    "control_catch_rate",
    "length_ratio",
    "length_controlled_estimate",
)


def write_evidence(path: pathlib.Path, scenario: simulate.Scenario, *, n: int = 600, seed: int = 0) -> pathlib.Path:
    records = simulate.simulate_evidence(n, scenario, seed=seed)
    path.write_text("".join(r.to_json() + "\n" for r in records))
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = analyze.main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def good(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_evidence(tmp_path / "good.jsonl", simulate.Scenario(mu=0.6, control_rate=0.1, length_ratio=1.3))


@pytest.fixture
def worse(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_evidence(tmp_path / "worse.jsonl", simulate.Scenario(mu=0.3, control_rate=0.1))


def test_json_lines_carry_the_decision_of_each_file(good, worse):
    status, out, err = run(str(good), str(worse), "--json")
    assert (status, err) == (0, "")
    lines = [json.loads(text) for text in out.splitlines()]
    assert [entry["file"] for entry in lines] == [str(good), str(worse)]
    for entry in lines:
        assert set(REQUIRED) <= set(entry)
    assert (lines[0]["decision"], lines[1]["decision"]) == ("passed", "failed")
    assert lines[0]["length_controlled_estimate"] is not None
    recomputed = decision.decide(simulate.simulate_evidence(600, simulate.Scenario(mu=0.3, control_rate=0.1)))
    assert lines[1]["samples"] == recomputed.stats["samples"]
    assert lines[1]["upper"] == pytest.approx(recomputed.stats["upper"])


def test_a_length_unresolved_run_is_recomputed_exactly(tmp_path):
    """An equal candidate whose length-controlled bounds straddle the bar when maxSamples is reached."""
    scenario = simulate.Scenario(mu=0.5, control_rate=0.1)
    path = write_evidence(tmp_path / "unresolved.jsonl", scenario, n=330, seed=25)
    _, out, _ = run(str(path), "--json", "--max-samples", "300")
    entry = json.loads(out)
    recomputed = decision.decide(
        simulate.simulate_evidence(330, scenario, seed=25), decision.TestSettings(max_samples=300)
    )
    assert (entry["decision"], entry["reason"]) == ("inconclusive", "LengthUnresolved")
    assert entry["stats"] == json.loads(json.dumps(recomputed.stats))
    assert entry["length_controlled_lower"] < 0.45 < entry["length_controlled_upper"]


def test_settings_flags_reach_the_decision(good):
    _, out, _ = run(str(good), "--json", "--candidates", "4", "--margin", "0.1", "--min-samples", "80")
    entry = json.loads(out)
    assert entry["stats"]["threshold"] == pytest.approx(80)
    assert entry["stats"]["null_mean"] == pytest.approx(0.4)
    assert entry["samples"] >= 80


def test_readable_summary_names_file_verdict_and_numbers(good):
    status, out, _ = run(str(good))
    assert status == 0
    assert out.startswith(f"{good}: PASSED (NonInferior)")
    for words in ("confidence sequence", "swap consistency", "length ratio", "judge calls"):
        assert words in out


def test_any_verdict_exits_zero_but_malformed_input_exits_two_naming_file_and_line(tmp_path, good):
    bad = tmp_path / "bad.jsonl"
    lines = good.read_text().splitlines()
    lines[2] = lines[2].replace('"control": false', '"control": "maybe"')
    bad.write_text("\n".join(lines) + "\n")
    status, out, err = run(str(bad), str(good), str(tmp_path / "missing.jsonl"))
    assert status == 2
    assert f"{bad}:3: " in err and '"control"' in err
    assert "missing.jsonl: cannot read" in err
    assert out.startswith(f"{good}: PASSED")  # the good file is still analysed


def test_settings_out_of_range_exit_two():
    status, _, err = run("whatever.jsonl", "--margin", "0.7")
    assert status == 2 and "margin" in err


def test_runs_as_a_module(good):
    done = subprocess.run(
        [sys.executable, "-m", "assay.qualification.analyze", str(good), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decision"] == "passed"
