"""Publish a finished run for committing: its small outputs plus a PROVENANCE.md.

A run folder holds checkpoints, caches and sweeps that do not belong in git. ``publish_run``
writes ``PROVENANCE.md`` into the run folder, naming the config (path and sha256 of the file),
the git revision(s) the tables were made at, the data and its source, the device, the library
versions, the wall time and the compute time per job, and lists the files that ``.gitignore``
lets through for committed runs (tables, figures, per-epoch metrics, benchmarks).

    python -m twindnn.publish results/cifar10_cpu --config config/cifar10_cpu.yaml \
        --data-note "CIFAR-10 (JPEG copy)"
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import re
import sys
from pathlib import Path

import pandas as pd

from .table_io import markdown_table

# What a committed run keeps (the rest is reproducible from these and the config).
PUBLISHED = ("tables/*", "figures/*", "models/*_metrics.csv", "benchmarks/*.tsv", "PROVENANCE.md")
_GIT = re.compile(r"git `([0-9a-f]{7,40}(?:-dirty)?|unknown)`")


class PublishError(RuntimeError):
    """A run folder that is not finished, or not a run folder."""


def recorded_revisions(tables_dir: Path) -> list[str]:
    """The git revisions named in the provenance footers of the run's Markdown tables."""
    revisions: set[str] = set()
    for md in sorted(tables_dir.glob("*.md")):
        revisions.update(_GIT.findall(md.read_text()))
    return sorted(revisions)


def job_times(benchmarks_dir: Path) -> pd.DataFrame:
    """Wall seconds and peak memory (MB) of every benchmarked job, longest first."""
    rows = []
    for tsv in sorted(benchmarks_dir.glob("*.tsv")):
        bench = pd.read_csv(tsv, sep="\t")
        rows.append({"job": tsv.stem, "seconds": float(bench["s"].iloc[-1]),
                     "max_rss_mb": float(bench["max_rss"].iloc[-1])})
    table = pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb"])
    return table.sort_values("seconds", ascending=False, ignore_index=True)


def elapsed_seconds(run_dir: Path, times: pd.DataFrame) -> float:
    """From the start of the first job to the last table or figure being written.

    A job's start is its log's last write less its benchmarked seconds (``times``, from
    :func:`job_times`), where it has a benchmark.
    """
    bench = times.set_index("job")["seconds"]
    starts = [log.stat().st_mtime - bench.get(log.stem, 0.0) for log in (run_dir / "logs").glob("*.log")]
    ends = [p.stat().st_mtime for sub in ("tables", "figures") for p in (run_dir / sub).glob("*")]
    if not starts or not ends:
        raise PublishError(f"{run_dir}: no logs/ or no tables/figures: has the run finished?")
    return max(ends) - min(starts)


def provenance_markdown(run_dir: Path, config_path: Path, data_note: str | None = None,
                        wall_seconds: float | None = None, note: str | None = None) -> str:
    """The text of PROVENANCE.md for the finished run in ``run_dir``."""
    summary_csv = run_dir / "tables" / "summary.csv"
    meta_json = run_dir / "data" / "meta.json"
    for needed in (summary_csv, meta_json, config_path):
        if not needed.exists():
            raise PublishError(f"{needed} is missing: run the workflow to the end first "
                               f"(snakemake --configfile {config_path}).")
    meta = json.loads(meta_json.read_text())
    summary = pd.read_csv(summary_csv)
    config_sha = hashlib.sha256(config_path.read_bytes()).hexdigest()
    revisions = recorded_revisions(run_dir / "tables")
    devices = sorted(summary["throughput_device"].unique()) if "throughput_device" in summary else []
    summary_md = run_dir / "tables" / "summary.md"
    footer = next((line for line in (summary_md.read_text().splitlines() if summary_md.exists() else [])
                   if line.startswith("Provenance:")), "")
    times = job_times(run_dir / "benchmarks")
    elapsed = wall_seconds if wall_seconds is not None else elapsed_seconds(run_dir, times)
    data = data_note or meta.get("dataset", "unknown")
    lines = [
        f"# Provenance of `{run_dir.name}`",
        "",
        "| what | value |",
        "| --- | --- |",
        f"| config | `{config_path.as_posix()}` (sha256 of the file `{config_sha[:16]}`) |",
        f"| git revision(s) the tables were made at | {', '.join(f'`{r}`' for r in revisions) or 'unknown'} |",
        f"| data | {data}: {meta.get('source', 'unknown source')}; train {meta.get('train_count')}, "
        f"val {meta.get('val_count')}, test {meta.get('test_count')} images |",
        f"| device (throughput and training) | {'; '.join(devices) or 'unknown'} |",
        f"| wall time, first job to last table | {elapsed / 60:.1f} min |",
        f"| compute time, sum of benchmarked jobs | {times['seconds'].sum() / 60:.1f} min |",
        f"| published | {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} |",
        "",
        *([note, ""] if note else []),
        footer,
        "",
        "FPGA figures (`tables/hw_*.csv`) are FINN+ analytical estimates unless their `source` column "
        "says `measured on board`; throughput in `tables/summary.*` was measured on the device above, "
        "not on an FPGA.",
        "",
        "## Benchmarked jobs",
        "",
        markdown_table(times.round(1)) if len(times) else "(none)",
        "",
        "## Reproduce",
        "",
        f"    .venv/bin/snakemake --profile workflow/profiles/default --configfile {config_path.as_posix()}",
        "",
    ]
    return "\n".join(lines)


def publish_run(run_dir: str | Path, config_path: str | Path, data_note: str | None = None,
                wall_seconds: float | None = None, note: str | None = None) -> list[Path]:
    """Write PROVENANCE.md into ``run_dir``; return the files a commit of the run holds."""
    run_dir, config_path = Path(run_dir), Path(config_path)
    text = provenance_markdown(run_dir, config_path, data_note, wall_seconds, note)
    (run_dir / "PROVENANCE.md").write_text(text)
    return sorted({p for pattern in PUBLISHED for p in run_dir.glob(pattern) if p.is_file()})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twindnn.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="results/<run_name> of a finished run")
    parser.add_argument("--config", required=True, help="the config file the run used")
    parser.add_argument("--data-note", help='how to name the data, e.g. "CIFAR-10 (JPEG copy)"')
    parser.add_argument("--wall-seconds", type=float, help="wall time if measured outside (default: from file times)")
    parser.add_argument("--note", help="how the run went, in a sentence (e.g. which jobs were re-run and why)")
    args = parser.parse_args(argv)
    try:
        files = publish_run(args.run_dir, args.config, args.data_note, args.wall_seconds, args.note)
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
