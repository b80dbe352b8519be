"""False promotion at the margin when prompt variants are selected: naive best-of-k on the same data against
select-on-validation, qualify-on-holdout (issue 11, item 3). Prints a Markdown table.

    .venv/bin/python benchmarks/optimize_selection.py --runs 4000

Every variant is exactly at the margin (mu = 0.45, margin 0.05, 30% ties), so every promotion is false. The
split is assay.optimize.split's default: 40% train (unused here: the optimizer's proposals), 20% validation,
40% holdout. Runs are drawn and decided by the numpy twin of the decision (tests/unit/qualification/betting_twin.py);
the study itself is tests/unit/optimize/selection_study.py, which the unit tests run with 2,000 runs.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from unit.optimize import selection_study as study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--records", type=int, default=1200, help="records in the dataset")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    common = {"runs": args.runs, "n": args.records, "alpha": args.alpha}
    started = time.monotonic()
    print(f"{args.runs} runs a row, {args.records} records, alpha {args.alpha}, every variant at mu = 0.45\n")
    print(
        "| variants k | naive: best of k on all records | validation pick, holdout test (K=1) "
        "| + as written on the holdout (K=2) |"
    )
    print("|---:|---:|---:|---:|")
    for i, k in enumerate(args.k):
        seed = args.seed + 10 * i
        naive = study.naive_best_of_k(k=k, seed=seed, **common)
        holdout = study.select_then_holdout(k=k, seed=seed + 1, **common)
        both = study.select_then_holdout(k=k, seed=seed + 2, with_as_written=True, **common)
        cells = [f"{r.promoted:.4f} ± {r.se:.4f}" for r in (naive, holdout, both)]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print(f"\n(± one standard error; {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
