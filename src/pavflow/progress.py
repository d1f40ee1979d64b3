"""Progress bars on long loops (training steps, rollout batches, search budgets).

On a terminal the bar redraws twice a second. In a log file (Snakemake redirects every job's stderr
to results/<exp>/logs/) it redraws at most once per LOG_INTERVAL_S, on the same line (carriage
returns): often enough for `pavflow status` (pavflow.status) to show a running job's step/total and
ETA, and a log holds a few hundred bytes per minute of bar updates, not thousands of redraws.
TQDM_DISABLE=1 turns bars off.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL_S = 5.0


def progress(iterable=None, *, desc: str, total: int | None = None, file=None) -> tqdm:
    out = sys.stderr if file is None else file
    tty = hasattr(out, "isatty") and out.isatty()
    return tqdm(iterable, desc=desc, total=total, file=out, mininterval=0.5 if tty else LOG_INTERVAL_S,
                maxinterval=LOG_INTERVAL_S, dynamic_ncols=tty, ascii=not tty, smoothing=0.1)
