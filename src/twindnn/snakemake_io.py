"""Helpers shared by the Snakemake rule scripts in ``scripts/``."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch


@contextlib.contextmanager
def redirect_logs(log_path: str | Path) -> Iterator:
    """Send stdout and stderr to ``log_path`` (appending) for the duration of the block; yield
    the console (the stderr the job had before) for the few lines a user should see while a long
    job runs (one per training epoch).

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
    console = open(saved_fds[1], "w", buffering=1, closefd=False)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    yield console
                except BaseException:
                    traceback.print_exc(file=log)
                    raise
        finally:
            log.flush()
            console.close()
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)


def set_threads(threads: int) -> None:
    """torch's CPU threads = the cores the job was given (``--cores``, a cluster's allocation)."""
    torch.set_num_threads(max(1, int(threads)))


def run_rule(snakemake, stage_cls, step, extra_outputs: dict | None = None, **kwargs):
    """Body of a rule script: the stage's config object from ``params.stage``, torch threads from
    ``threads``, stdout/stderr into the log; then ``step(stage, inputs, outputs, **kwargs)``, with
    ``progress`` (the console) for steps that take it."""
    set_threads(snakemake.threads)
    with redirect_logs(snakemake.log[0]) as console:
        stage = stage_cls.from_params(snakemake.params.stage)
        outputs = {**dict(snakemake.output.items()), **(extra_outputs or {})}
        if "progress" in inspect.signature(step).parameters:
            kwargs = {"progress": console, **kwargs}
        result = step(stage, dict(snakemake.input.items()), outputs, **kwargs)
        if result is not None:
            print(result)
        return result
