"""`python -m assaylab.executor`: run Jobs' pods as local processes until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import pathlib
import signal
import sys
import threading

from assaylab.executor import local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assaylab.executor", description="Run Jobs' pods as local processes (no kubelet)."
    )
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--namespace", action="append", default=None, help="repeatable; default all namespaces")
    parser.add_argument("--selector", default=None, help=f"label selector (default {local.DEFAULT_SELECTOR!r})")
    parser.add_argument("--workdir", type=pathlib.Path, default=None, help="pod directories and logs (kept)")
    parser.add_argument("--id", default=None, help="executor id; reuse it to adopt this executor's pods")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # Handlers rather than a blocked signal mask: processes we start inherit the mask and must see SIGTERM.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    executor = local.LocalExecutor(
        args.kubeconfig, namespaces=args.namespace, selector=args.selector, workdir=args.workdir, executor_id=args.id
    )
    with executor:
        print(f"executor {executor.id}: pod logs under {executor.workdir}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
