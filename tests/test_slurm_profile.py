"""The SLURM profile, run against a real single-node SLURM started on localhost.

Two tests share one throwaway cluster (``tests/slurm_cluster.py``):

* ``test_profile_submits_through_sbatch`` - a tiny workflow written into a tmp
  dir; proves the cluster + ``workflow/profiles/slurm`` mechanics (sbatch,
  squeue status checks, resource -> sbatch flag mapping) in ~20 s, independent
  of the ML workflow.
* ``test_workflow_on_slurm_matches_local`` - the real workflow with
  ``config/tiny.yaml``, once with ``workflow/profiles/slurm`` and once with
  ``workflow/profiles/default``, in two separate working directories; same set
  of output files, byte-identical dataset cache, same CSV columns.

Needs root and the Debian packages from ``scripts/ci/install_slurm.sh``;
otherwise skipped with the reason (``TWINDNN_REQUIRE_SLURM=1`` turns the skip
into a failure, for CI).  Run: ``.venv/bin/pytest -m slurm tests/test_slurm_profile.py``.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import SlurmStartError, SlurmUnavailable, local_slurm  # noqa: E402

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "workflow" / "profiles" / "default"
# Knobs of the real-workflow test (environment variables):
#   TWINDNN_SLURM_TEST_CONFIG   config file (default config/tiny.yaml)
#   TWINDNN_SLURM_TEST_TARGETS  space-separated targets/rules (default: the summary table)
#   TWINDNN_SLURM_TEST_TIMEOUT  seconds per Snakemake run (default 1500)
TINY_CONFIG = Path(
    os.environ.get("TWINDNN_SLURM_TEST_CONFIG", REPO / "config" / "tiny.yaml")
)
TARGETS = os.environ.get("TWINDNN_SLURM_TEST_TARGETS", "").split()
# Model-free outputs: the dataset cache written by rule prepare_data.
MODEL_FREE_DIRS = ("data",)

# Test-only overrides of the slurm profile: poll sooner.  The plugin checks the
# job status `init` s after submission and adds 10 s each time nothing has
# finished; a trivial job takes ~5 s here (Snakemake starts inside it), so 8 s
# usually catches it on the first check.  squeue is only used if MinJobAge
# (300 s on the test cluster) >= 3 x init, else the plugin falls back to sacct.
FAST_POLL = [
    "--slurm-init-seconds-before-status-checks",
    "8",
    "--seconds-between-status-checks",
    "2",
    "--latency-wait",
    "10",
]


def _snakemake_exe() -> str:
    exe = Path(sys.executable).parent / "snakemake"
    if exe.exists():
        return str(exe)
    found = shutil.which("snakemake")
    if not found:
        pytest.skip("snakemake executable not found next to the test interpreter")
    return found


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running local SLURM (munged, slurmctld, slurmd), stopped after the module."""
    try:
        with local_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
            yield cluster
    except SlurmUnavailable as err:
        if os.environ.get("TWINDNN_REQUIRE_SLURM") == "1":
            pytest.fail(f"TWINDNN_REQUIRE_SLURM=1 but: {err}")
        pytest.skip(str(err))
    except SlurmStartError as err:
        pytest.fail(f"local SLURM did not start:\n{err}")


def run_snakemake(args, *, env, cwd, timeout_s: int) -> subprocess.CompletedProcess:
    """Snakemake under ``timeout -k 20`` (a plain SIGTERM can leave it hanging)."""
    cmd = ["timeout", "-k", "20", str(timeout_s), _snakemake_exe(), *map(str, args)]
    start = time.monotonic()
    res = subprocess.run(cmd, env=env, cwd=cwd, text=True, capture_output=True)
    res.elapsed = time.monotonic() - start
    if res.returncode != 0:
        timed_out = " (TIMED OUT)" if res.returncode in (124, 137) else ""
        pytest.fail(
            f"snakemake exited {res.returncode}{timed_out} after {res.elapsed:.0f}s\n"
            f"cmd: {' '.join(cmd)}\n--- stdout ---\n{res.stdout[-6000:]}\n"
            f"--- stderr ---\n{res.stderr[-12000:]}"
        )
    return res


# --------------------------------------------------------------------------- throwaway workflow

THROWAWAY_SNAKEFILE = r"""
localrules: all

rule all:
    input: "out/combined.txt"

rule with_resources:
    output: "out/a.txt"
    resources:
        mem_mb=300,
        runtime=7,
    shell:
        "echo job=${{SLURM_JOB_ID:-NONE}} partition=${{SLURM_JOB_PARTITION:-NONE}} "
        "cpus=${{SLURM_CPUS_PER_TASK:-NONE}} > {output}"

rule profile_defaults:
    output: "out/b.txt"
    shell:
        "echo job=${{SLURM_JOB_ID:-NONE}} partition=${{SLURM_JOB_PARTITION:-NONE}} "
        "cpus=${{SLURM_CPUS_PER_TASK:-NONE}} > {output}"

rule combine:
    input: "out/a.txt", "out/b.txt"
    output: "out/combined.txt"
    threads: @THREADS@
    shell:
        "cat {input} > {output} && "
        "echo job=${{SLURM_JOB_ID:-NONE}} partition=${{SLURM_JOB_PARTITION:-NONE}} "
        "cpus=${{SLURM_CPUS_PER_TASK:-NONE}} >> {output}"
"""


def _parse_job_line(line: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in line.split())


def test_profile_submits_through_sbatch(slurm_cluster, tmp_path):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    threads = min(2, slurm_cluster.cpus)
    (workdir / "Snakefile").write_text(
        textwrap.dedent(THROWAWAY_SNAKEFILE).replace("@THREADS@", str(threads))
    )

    res = run_snakemake(
        [
            "--profile",
            SLURM_PROFILE,
            "--snakefile",
            workdir / "Snakefile",
            "--directory",
            workdir,
            *FAST_POLL,
            "--slurm-keep-successful-logs",
            # partition override, as a site would do it per rule:
            "--set-resources",
            f"with_resources:slurm_partition={slurm_cluster.partition}",
        ],
        env=slurm_cluster.env,
        cwd=workdir,
        timeout_s=180,
    )
    print(f"throwaway workflow on SLURM: {res.elapsed:.1f}s")

    lines = (workdir / "out" / "combined.txt").read_text().splitlines()
    assert len(lines) == 3, lines
    jobs = [_parse_job_line(line) for line in lines]
    ids = [j["job"] for j in jobs]
    # Every rule but the local `all` ran as its own SLURM job.
    assert all(i.isdigit() for i in ids), f"a job did not run under SLURM: {lines}"
    assert len(set(ids)) == 3, ids
    assert {j["partition"] for j in jobs} == {slurm_cluster.partition}
    assert [j["cpus"] for j in jobs] == [
        "1",
        "1",
        str(threads),
    ]  # threads -> --cpus-per-task

    # resources -> sbatch flags, read back from slurmctld (no sacct needed).
    a = slurm_cluster.job_info(ids[0])
    assert a["JobState"] == "COMPLETED", a
    assert a["TimeLimit"] == "00:07:00", a  # runtime=7 -> -t 7
    assert a["MinMemoryNode"] == "300M", a  # mem_mb=300 -> --mem 300
    assert a["Partition"] == slurm_cluster.partition
    b = slurm_cluster.job_info(ids[1])
    assert b["TimeLimit"] == "01:00:00", b  # profile default-resources runtime=60
    assert b["MinMemoryNode"] == "4000M", b  # profile default-resources mem_mb=4000
    c = slurm_cluster.job_info(ids[2])
    assert c["NumCPUs"] == str(threads), c

    # The plugin's per-job SLURM logs (kept by --slurm-keep-successful-logs).
    logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.parent.name for p in logs} >= {
        "rule_with_resources",
        "rule_profile_defaults",
        "rule_combine",
    }


# --------------------------------------------------------------------------- the real workflow


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _table_header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(
            csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ","), []
        )


@pytest.mark.slow
def test_workflow_on_slurm_matches_local(slurm_cluster, tmp_path):
    if not TINY_CONFIG.exists():
        pytest.skip(f"{TINY_CONFIG} does not exist yet")
    snakefile = REPO / "Snakefile"
    if not snakefile.exists():
        snakefile = REPO / "workflow" / "Snakefile"
    if not snakefile.exists():
        pytest.skip("no Snakefile (top-level or workflow/) yet")

    timeout_s = int(os.environ.get("TWINDNN_SLURM_TEST_TIMEOUT", "1500"))
    # targets first: --configfile takes several values
    # The FPGA half and the second twin have their own tests (test_workflow, test_hardware_*): here
    # they would only multiply the run time, so the cluster runs the training and evaluation DAG of
    # one twin up to the software tables (every kind of job of that half: data, both trainings,
    # logits, cascade, throughput, tables).
    import yaml

    config = yaml.safe_load(Path(TINY_CONFIG).read_text())
    config["hardware"] = {"enabled": False}
    first = next(iter(config["twins"]))
    config["twins"] = {first: config["twins"][first]}
    config_file = tmp_path / "slurm_test_config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    results_dir = config.get("results_dir", "results")
    targets = TARGETS or [f"{results_dir}/{config['run_name']}/tables/summary.csv"]
    common = [*targets, "--snakefile", snakefile, "--configfile", config_file]
    runs = {}
    for name, profile, extra in (
        ("local", LOCAL_PROFILE, []),
        ("slurm", SLURM_PROFILE, [*FAST_POLL, "--slurm-keep-successful-logs"]),
    ):
        workdir = tmp_path / name
        workdir.mkdir()
        # The Snakefile's `configfile: "config/config.yaml"` is read relative to
        # the working directory.
        (workdir / "config").symlink_to(REPO / "config", target_is_directory=True)
        res = run_snakemake(
            ["--profile", profile, *common, "--directory", workdir, *extra],
            env=slurm_cluster.env,
            cwd=workdir,
            timeout_s=timeout_s,
        )
        print(f"real workflow, {name} profile: {res.elapsed:.1f}s")
        runs[name] = workdir / "results"

    local, slurm = runs["local"], runs["slurm"]
    assert local.is_dir() and slurm.is_dir()
    local_files, slurm_files = _files(local), _files(slurm)
    assert local_files, "the local run produced no files under results/"
    assert slurm_files == local_files, (
        f"only local: {sorted(local_files - slurm_files)}\n"
        f"only slurm: {sorted(slurm_files - local_files)}"
    )

    model_free = sorted(
        f for f in local_files if any(d in Path(f).parts[:-1] for d in MODEL_FREE_DIRS)
    )
    assert (
        model_free
    ), f"no dataset cache files found under */{MODEL_FREE_DIRS}/ in {local}"
    differ = [
        f for f in model_free if (local / f).read_bytes() != (slurm / f).read_bytes()
    ]
    assert not differ, f"dataset cache differs between local and SLURM runs: {differ}"

    tables = sorted(f for f in local_files if f.endswith((".csv", ".tsv")))
    for f in tables:
        assert _table_header(slurm / f) == _table_header(
            local / f
        ), f"columns differ in {f}"
    print(
        f"compared {len(local_files)} files: {len(model_free)} byte-identical "
        f"dataset cache files, {len(tables)} tables with the same columns"
    )

    # The SLURM run really went through sbatch: the plugin wrote per-job logs dirs.
    slurm_logs = tmp_path / "slurm" / ".snakemake" / "slurm_logs"
    assert slurm_logs.is_dir() and any(
        p.name.startswith("rule_") for p in slurm_logs.iterdir()
    )
