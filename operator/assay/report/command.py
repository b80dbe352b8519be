"""`assay report`: the qualification report of a QualificationRun in the cluster, or of evidence files offline.

    assay report RUN [-n NAMESPACE] [--format html|md|json] [-o FILE]
    assay report --evidence PATH [--spec RUN.yaml] [--margin M ...] [--format ...] [-o FILE]
    assay report --watch POLICY [-n NAMESPACE] [--format html|md|json] [-o FILE]

The verdict is recomputed from the evidence with the run's own settings (assay.qualification.decision), so
the report is an audit of the status, not a copy of it. PATH is an evidence file (JSON Lines in evaluation
order) or an evaluator evidence directory (`ASSAY_EVIDENCE_DIR`: its shards' longest complete prefix).
Offline, settings come from --spec (a QualificationRun manifest), then from the flags. --watch reports a
RoutePolicy's live quality watch instead: status.watch, the live score plot, and its e-value and alarm
recomputed from the kept samples (assay.watch.evidence). The format follows
-o's extension (.md, .json, else HTML) unless --format says otherwise; without -o the report goes to stdout.
Exit status 0 when the report was written, 2 when the run, the evidence or a setting could not be used.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import pydantic
import yaml

from assay.qualification import cost, decision, evidence
from assay.report import content, figures, render

EXIT_OK = 0
EXIT_BAD_INPUT = 2

# Flag -> TestSettings field, for offline reports (a --spec gives them all at once).
_SETTING_FLAGS = {
    "margin": (float, "non-inferiority margin"),
    "alpha": (float, "false promotion rate"),
    "candidates": (int, "candidates tested on the same pool"),
    "min_samples": (int, "fewest pairs to pass"),
    "max_samples": (int, "most pairs"),
    "min_controls": (int, "fewest sensitivity controls"),
}


class ReportInputError(ValueError):
    """An offline input (evidence path, spec file, setting) that cannot be used; the message says which."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assay report",
        description="Write the qualification report of a QualificationRun (from the cluster) or of evidence files.",
    )
    parser.add_argument("run", nargs="?", metavar="RUN", help="QualificationRun name (read from the cluster)")
    parser.add_argument(
        "--watch", metavar="POLICY", help="the live quality watch of this RoutePolicy (read from the cluster)"
    )
    parser.add_argument("-n", "--namespace", help="namespace of RUN or POLICY (default: the kubeconfig context's)")
    parser.add_argument("--evidence", metavar="PATH", help="offline: an evidence .jsonl file or evidence directory")
    parser.add_argument("--spec", metavar="FILE", help="offline: a QualificationRun manifest for settings and models")
    parser.add_argument("--name", help="offline: the report's title (default: the evidence file's name)")
    defaults = decision.TestSettings()
    for field, (kind, help_) in _SETTING_FLAGS.items():
        flag = "--" + field.replace("_", "-")
        parser.add_argument(flag, type=kind, help=f"offline: {help_} (default {getattr(defaults, field)})")
    parser.add_argument("--baseline-model", help="offline: baseline model, for prices (default: from --spec)")
    parser.add_argument("--candidate-model", help="offline: candidate model, for prices (default: from --spec)")
    parser.add_argument("--format", choices=render.FORMATS, help="html, md or json (default: from -o, else html)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    return parser


def output_format(explicit: str | None, output: str | None) -> str:
    """--format if given, else what -o's extension says, else html."""
    if explicit:
        return explicit
    suffix = pathlib.Path(output or "").suffix.lower()
    return {".md": "md", ".markdown": "md", ".json": "json"}.get(suffix, "html")


def read_spec(path: str) -> Any:
    """A QualificationRunSpec from a QualificationRun manifest (or a bare spec) in YAML or JSON."""
    from assay.api import qualificationrun

    try:
        document = yaml.safe_load(pathlib.Path(path).read_text())
    except OSError as exc:
        raise ReportInputError(f"--spec {path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ReportInputError(f"--spec {path}: not YAML: {exc}") from None
    if isinstance(document, dict) and document.get("kind") == "QualificationRun":
        document = document.get("spec")
    try:
        return qualificationrun.QualificationRunSpec.model_validate(document or {})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ReportInputError(f"--spec {path}: spec.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def evidence_records(path: str) -> list[evidence.EvidenceRecord]:
    """The records of an evidence file, or the longest complete prefix of an evidence directory's shards."""
    from assay.evaluator import errors, sinks

    source = pathlib.Path(path)
    try:
        if not source.is_dir():
            return evidence.read_evidence(source)
        by_shard, statuses = sinks.read_evidence_dir(source)
        shards = max([len(statuses), *(shard + 1 for shard in by_shard)])
        prefix = sinks.longest_complete_prefix(by_shard, shards)
        return [evidence.from_dict(r, line_no=r["seq"], source=f"{path} seq") for r in prefix]
    except (evidence.EvidenceError, errors.EvaluatorError) as exc:
        raise ReportInputError(str(exc)) from None
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def offline_report(args: argparse.Namespace) -> content.Report:
    """The report of --evidence, with settings from --spec and the flags."""
    settings = decision.TestSettings()
    baseline_model, candidate_model = args.baseline_model, args.candidate_model
    prices = cost.default_prices()
    if args.spec:
        from assay.controllers import handle_qualificationrun  # the operator's own spec -> settings mapping

        spec = read_spec(args.spec)
        settings = handle_qualificationrun.test_settings(spec)
        baseline_model = baseline_model or spec.baseline.model
        candidate_model = candidate_model or spec.candidate.model
        prices = cost.price_table(spec.pricing)
    overrides = {field: getattr(args, field) for field in _SETTING_FLAGS if getattr(args, field) is not None}
    try:
        settings = dataclasses.replace(settings, **overrides)
    except decision.SettingsError as exc:
        raise ReportInputError(str(exc)) from None
    records = evidence_records(args.evidence)
    return content.build(
        records,
        settings,
        name=args.name or pathlib.Path(args.evidence).name,
        source=f"Evidence {args.evidence}" + (f" with the settings of {args.spec}" if args.spec else ""),
        baseline_model=baseline_model,
        candidate_model=candidate_model,
        prices=prices,
    )


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `assay report`; returns the exit status (0 written, 2 unusable input)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if [bool(args.run), bool(args.evidence), bool(args.watch)].count(True) != 1:
        parser.error("give either RUN (a QualificationRun in the cluster), --evidence PATH or --watch POLICY")
    offline = ("spec", "name", "baseline_model", "candidate_model", *_SETTING_FLAGS)
    offline_only = [f for f in offline if getattr(args, f) is not None]
    if (args.run or args.watch) and offline_only:
        flags = ", ".join("--" + f.replace("_", "-") for f in offline_only)
        parser.error(f"{flags}: only with --evidence (a run's report uses the run's own settings)")
    fmt = output_format(args.format, args.output)
    report: content.Report | content.WatchReport
    try:
        if args.watch:
            from assay.report import cluster

            try:
                watched = cluster.watch_report(args.namespace or cluster.current_namespace(), args.watch)
            except cluster.ClusterError as exc:
                raise ReportInputError(str(exc)) from None
            report, text = watched, render.WATCH_RENDERERS[fmt](watched)
        elif args.run:
            from assay.report import cluster

            try:
                report = cluster.run_report(args.namespace or cluster.current_namespace(), args.run)
            except cluster.ClusterError as exc:
                raise ReportInputError(str(exc)) from None
            text = render.RENDERERS[fmt](report)
        else:
            report = offline_report(args)
            text = render.RENDERERS[fmt](report)
    except (ReportInputError, figures.MissingMatplotlib) as exc:
        print(f"assay report: {exc}", file=err)
        return EXIT_BAD_INPUT
    if args.output and args.output != "-":
        try:
            pathlib.Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"assay report: {args.output}: cannot write: {exc.strerror or exc}", file=err)
            return EXIT_BAD_INPUT
        print(f"{args.output}: {report.verdict.upper()} ({report.reason}), {fmt} report written", file=err)
    else:
        out.write(text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
