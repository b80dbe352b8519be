"""A stack sampler for the operator under a benchmark: put this directory on PYTHONPATH and set
ASSAY_PROFILE_OUT to a file, and a `python -m assay operator` process samples its main thread's stack every
5 ms (ASSAY_PROFILE_THREADS=all: every thread's), writing `<count> <frame;frame;...>` lines, most frequent
first, to that file every 2,000 samples and at exit (flame-graph folded format). Other processes are left
alone. Used for the 300-policy profile in docs/benchmarks.md:

    PYTHONPATH=benchmarks/stack_sampler ASSAY_PROFILE_OUT=/tmp/stacks.txt \\
        .venv/bin/python benchmarks/policies_at_scale.py --policies 300
"""

from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
import time

INTERVAL_S = 0.005
DEPTH = 60
DUMP_EVERY = 2000


def _folded(frame) -> str:  # type: ignore[no-untyped-def]
    stack = []
    while frame is not None and len(stack) < DEPTH:
        stack.append(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}")
        frame = frame.f_back
    return ";".join(reversed(stack))


def start(out: str, *, every_thread: bool) -> None:
    counts: collections.Counter[str] = collections.Counter()
    main = threading.main_thread().ident
    me: list[int | None] = [None]

    def dump() -> None:
        with open(out + ".tmp", "w", encoding="utf-8") as handle:
            handle.writelines(f"{n} {stack}\n" for stack, n in counts.most_common())
        os.replace(out + ".tmp", out)

    def sample() -> None:
        me[0] = threading.get_ident()
        taken = 0
        while True:
            time.sleep(INTERVAL_S)
            frames = sys._current_frames()
            for ident, frame in frames.items():
                if ident != me[0] and (every_thread or ident == main):
                    counts[_folded(frame)] += 1
            taken += 1
            if taken % DUMP_EVERY == 0:
                dump()

    threading.Thread(target=sample, name="stack-sampler", daemon=True).start()
    atexit.register(dump)


_OUT = os.environ.get("ASSAY_PROFILE_OUT")
if _OUT and "-m" in sys.orig_argv and "assay" in sys.orig_argv and "operator" in sys.orig_argv:
    start(_OUT, every_thread=os.environ.get("ASSAY_PROFILE_THREADS") == "all")
