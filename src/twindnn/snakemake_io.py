"""Helpers shared by the Snakemake rule scripts in ``scripts/``."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def redirect_logs(log_path: str | Path) -> Iterator[None]:
    """Send stdout and stderr to ``log_path`` (appending) for the duration of the block.

    Redirects both the Python streams and the file descriptors 1 and 2, so output
    of C extensions (torch, BLAS) lands in the log too. An exception escaping the
    block is written to the log with its traceback, then re-raised, so Snakemake
    still marks the job failed.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = [os.dup(1), os.dup(2)]
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    yield
                except BaseException:
                    traceback.print_exc(file=log)
                    raise
        finally:
            log.flush()
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
