"""`assay analyze FILE...`: recompute qualification decisions from stored evidence, for audit.
`assay analyze --watch POLICY [-n NAMESPACE]`: recompute a RoutePolicy's live quality watch (its e-value and
alarm sample) from the samples it kept in the cluster, and say whether they reproduce status.watch.

Each file is read in full, checked line by line, and decided exactly as the operator decides (same records in
the same order, same settings, so the same verdict at the same record). Exit status 0 when every file was
analysed, whatever the verdicts; 2 when a file cannot be read or holds a malformed line (named on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from assay.qualification import decision, evidence

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    defaults = decision.TestSettings()
    parser = argparse.ArgumentParser(
        prog="assay analyze",
        description="Recompute the qualification decision of each evidence file (JSON Lines, one pair a line).",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="evidence files, in evaluation order")
    parser.add_argument(
        "--watch", metavar="POLICY", help="instead: recompute this RoutePolicy's live quality watch (from the cluster)"
    )
    parser.add_argument("-n", "--namespace", help="namespace of POLICY (default: the kubeconfig context's)")
    parser.add_argument("--margin", type=float, default=defaults.margin, help="non-inferiority margin (0.05)")
    parser.add_argument("--alpha", type=float, default=defaults.alpha, help="false promotion rate (0.05)")
    parser.add_argument(
        "--candidates", type=int, default=defaults.candidates, help="candidates tested on the same pool (1)"
    )
    parser.add_argument("--min-samples", type=int, default=defaults.min_samples, help="fewest pairs to pass (50)")
    parser.add_argument("--max-samples", type=int, default=defaults.max_samples, help="most pairs (1200)")
    parser.add_argument(
        "--min-controls", type=int, default=defaults.min_controls, help="fewest sensitivity controls (10)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per file per line")
    return parser


def summary(file: str, result: decision.Decision) -> dict[str, Any]:
    """The JSON line for one file: the verdict, the headline numbers, and the full stats."""
    stats = result.stats
    headline = (
        "samples",
        "controls",
        "records",
        "estimate",
        "lower",
        "upper",
        "p_value",
        "swap_consistency",
        "control_catch_rate",
        "length_ratio",
        "length_controlled_estimate",
        "length_controlled_lower",
        "length_controlled_upper",
        "format_pass_rate_baseline",
        "format_pass_rate_candidate",
        "judge_calls_made",
        "judge_calls_saved",
    )
    out: dict[str, Any] = {"file": file, "decision": result.verdict, "reason": result.reason}
    out.update({key: stats[key] for key in headline})
    out["message"] = result.message
    out["stats"] = stats
    return out


def _number(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render(file: str, result: decision.Decision) -> str:
    """A few readable lines about one file's decision."""
    s: Mapping[str, Any] = result.stats
    level = 1 - s["alpha"] / s["candidates"]
    lines = [
        f"{file}: {result.verdict.upper()} ({result.reason}) after {s['samples']} pairs and {s['controls']} controls "
        f"({s['records']} records read)",
        f"  {result.message}",
        f"  estimate {_number(s['estimate'])}, confidence sequence [{_number(s['lower'])}, {_number(s['upper'])}] "
        f"(lower at {level:.3g}), bar {_number(s['null_mean'])}, anytime p-value {_number(s['p_value'], 4)}",
        f"  swap consistency {_number(s['swap_consistency'])}, control catch rate {_number(s['control_catch_rate'])}, "
        f"tie rate {_number(s['tie_rate'])}, agreement rate {_number(s['agreement_rate'])}",
        f"  length ratio {_number(s['length_ratio'], 2)}, length-controlled estimate "
        f"{_number(s['length_controlled_estimate'])} (bounds [{_number(s['length_controlled_lower'])}, "
        f"{_number(s['length_controlled_upper'])}]), format pass rate baseline "
        f"{_number(s['format_pass_rate_baseline'])} candidate {_number(s['format_pass_rate_candidate'])}",
        f"  judge calls {s['judge_calls_made']} made, {s['judge_calls_saved']} saved",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `assay analyze` with these arguments; returns the exit status (0 analysed, 2 bad input)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if bool(args.files) == bool(args.watch):
        parser.error("give evidence FILEs or --watch POLICY")
    if args.watch:
        return _watch(args.namespace, args.watch, as_json=args.json, out=out, err=err)
    try:
        settings = decision.TestSettings(
            margin=args.margin,
            alpha=args.alpha,
            candidates=args.candidates,
            min_samples=args.min_samples,
            max_samples=args.max_samples,
            min_controls=args.min_controls,
        )
    except decision.SettingsError as problem:
        print(f"assay analyze: {problem}", file=err)
        return EXIT_BAD_INPUT
    status = EXIT_OK
    for file in args.files:
        try:
            records = evidence.read_evidence(file)
        except evidence.EvidenceError as problem:
            print(f"assay analyze: {problem}", file=err)
            status = EXIT_BAD_INPUT
            continue
        except OSError as problem:
            print(f"assay analyze: {file}: cannot read: {problem.strerror or problem}", file=err)
            status = EXIT_BAD_INPUT
            continue
        result = decision.decide(records, settings)
        if args.json:
            print(json.dumps(summary(file, result), allow_nan=False), file=out)
        else:
            print(render(file, result), file=out)
    return status


def _watch(namespace: str | None, name: str, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Recompute one policy's watch from its kept samples; 0 when analysed (whether or not it matches)."""
    from assay.report import cluster

    try:
        report = cluster.watch_report(namespace or cluster.current_namespace(), name)
    except cluster.ClusterError as problem:
        print(f"assay analyze: {problem}", file=err)
        return EXIT_BAD_INPUT
    check = report.check
    if as_json:
        line = {"policy": name, "matches": check.matches, "complete": check.complete, **check.to_dict()}
        print(json.dumps(line, allow_nan=False), file=out)
    else:
        print(f"RoutePolicy {name}: {'MATCHES' if check.matches else 'DOES NOT MATCH'} status.watch", file=out)
        print(f"  {check.message()}", file=out)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
