"""`python -m assay.evaluator` (also `assay evaluate`): evaluate this pod's shard of a QualificationRun.

Configured by the environment only (see assay.evaluator.job); the one option is --help.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from assay.evaluator import job


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the (empty) command line, then run the shard; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m assay.evaluator",
        description=(job.__doc__ or "").split("\n\n", 1)[0],
        epilog=(job.__doc__ or "").split("\n\n", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    return job.main()


if __name__ == "__main__":
    sys.exit(main())
