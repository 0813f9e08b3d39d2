"""Start and stop a throwaway single-node SLURM cluster on localhost.

Used by ``tests/test_slurm_profile.py`` (marker ``slurm``).  Everything lives in
a directory the caller gives (normally a pytest tmp dir):

* ``munge.key`` (fresh random key), munged's socket, pid, seed and log files;
* ``slurm.conf`` (one node = this machine, one Default partition);
* slurmctld's StateSaveLocation, slurmd's spool dir, pid and log files.

The daemons run in the foreground (``munged -F``, ``slurmctld -D``,
``slurmd -D``) as children of the Python process, their PIDs are recorded and
exactly those processes are stopped at the end - also when start-up fails
half-way.  Nothing listens beyond loopback: the node address is 127.0.0.1 and
``CommunicationParameters=NoInAddrAny,NoCtldInAddrAny``; the TCP ports are
picked free on 127.0.0.1 at start-up.

There is no slurmdbd, hence ``sacct``/``sacctmgr``/``sshare`` do not work:
Snakemake's SLURM executor must use ``squeue`` for job status and must not be
given a ``slurm_account`` (the plugin validates accounts with sacctmgr/sshare).

Requirements: root (slurmd launches jobs; munged and the daemons run as root
here), Debian/Ubuntu packages ``slurmctld slurmd slurm-client munge``
(``scripts/ci/install_slurm.sh``).  :func:`unavailable_reason` says why a
cluster cannot be started; the pytest fixture skips with that reason (or fails
if ``TWINDNN_REQUIRE_SLURM=1``, so CI cannot silently skip).

Stand-alone use (debugging)::

    sudo .venv/bin/python tests/slurm_cluster.py /tmp/slurm-play   # Ctrl-C stops it
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REQUIRED_BINARIES = (
    "munged",
    "slurmctld",
    "slurmd",
    "sinfo",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "srun",
)

PARTITION = "debug"
# squeue keeps finished jobs for MinJobAge seconds; Snakemake's SLURM plugin
# (status command squeue) needs MinJobAge >= 3 * slurm-init-seconds-before-
# status-checks, and its poll interval grows up to 180 s between checks.
MIN_JOB_AGE = 300


class SlurmUnavailable(RuntimeError):
    """A local SLURM cluster cannot be started on this machine (skip reason)."""


class SlurmStartError(RuntimeError):
    """The daemons were started but the cluster did not come up."""


def _which(name: str) -> str | None:
    # slurmctld/slurmd/munged live in /usr/sbin, which is not on every PATH.
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin:/usr/local/sbin"
    return shutil.which(name, path=path)


def unavailable_reason() -> str | None:
    """Why a local SLURM cannot be started here, or None if it can."""
    if sys.platform != "linux":
        return "local SLURM test cluster needs Linux"
    missing = [b for b in REQUIRED_BINARIES if _which(b) is None]
    if missing:
        return (
            f"SLURM/munge binaries not found: {', '.join(missing)} "
            "(install with: sudo scripts/ci/install_slurm.sh)"
        )
    if os.geteuid() != 0:
        return "local SLURM test cluster must run as root (slurmd launches the jobs)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _detect_node() -> tuple[int, int]:
    """(CPUs, RealMemory MB) as slurmd itself sees this machine (``slurmd -C``).

    slurmd drains a node configured with more CPUs or memory than it detects,
    so the config takes these (memory minus 10 %, CPUs capped by the affinity).
    """
    cpus, mem_mb = os.cpu_count() or 1, 0
    try:
        out = subprocess.run(
            [_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30
        ).stdout
        fields = dict(tok.split("=", 1) for tok in out.split() if "=" in tok)
        cpus, mem_mb = int(fields["CPUs"]), int(fields["RealMemory"])
    except Exception:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_mb = int(line.split()[1]) // 1024
    cpus = max(1, min(cpus, len(os.sched_getaffinity(0))))
    return cpus, max(256, int(mem_mb * 0.9))


@dataclasses.dataclass
class SlurmCluster:
    """A running local cluster; ``env`` is what clients (sbatch, snakemake) need."""

    root: Path
    conf: Path
    node: str
    partition: str
    cpus: int
    real_memory_mb: int
    env: dict[str, str]
    pids: dict[str, int]
    logs: dict[str, Path]

    def run(self, *args: str, check: bool = True, timeout: float = 30):
        """Run a SLURM client command against this cluster."""
        return subprocess.run(
            list(args),
            env=self.env,
            check=check,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def node_state(self) -> str:
        res = self.run(
            "sinfo", "--noheader", "--Node", "-n", self.node, "-o", "%T", check=False
        )
        return (
            res.stdout.strip()
            if res.returncode == 0
            else f"<sinfo failed: {res.stderr.strip()}>"
        )

    def job_info(self, job_id: str | int) -> dict[str, str]:
        """``scontrol show job`` as a dict (works for MinJobAge s after the end)."""
        out = self.run("scontrol", "show", "job", "--oneliner", str(job_id)).stdout
        info: dict[str, str] = {}
        for token in out.split():
            if "=" in token:
                key, _, value = token.partition("=")
                info.setdefault(key, value)
        return info

    def log_tail(self, n: int = 40) -> str:
        parts = []
        for name, path in self.logs.items():
            try:
                lines = path.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                lines = ["<no log>"]
            parts.append(f"--- {name} ({path}) ---\n" + "\n".join(lines))
        return "\n".join(parts)


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the daemon if the Python process that started it dies
    (also on SIGKILL of pytest), so no daemon outlives a killed test run."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_munge_key(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(1024))


def _slurm_conf(
    *,
    root: Path,
    node: str,
    cpus: int,
    mem_mb: int,
    munge_socket: Path,
    ctld_port: int,
    slurmd_port: int,
    min_job_age: int,
) -> str:
    return f"""\
# Generated by tests/slurm_cluster.py - throwaway single-node test cluster.
ClusterName=twindnn-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MinJobAge={min_job_age}
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _stop(procs: dict[str, subprocess.Popen], grace: float = 15) -> None:
    """SIGTERM each recorded daemon (reverse start order), SIGKILL stragglers."""
    for name in reversed(list(procs)):
        proc = procs[name]
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for proc in procs.values():
        for fh in (proc.stdout, proc.stderr):
            if fh:
                fh.close()


def _cancel_jobs(env: dict[str, str], spool: Path, timeout: float = 20) -> None:
    """Cancel all jobs of the test cluster and wait until their steps are gone.

    slurmstepd processes are started by slurmd and re-parented, so they are not
    our children: cancel through SLURM and wait until their step sockets in the
    spool dir have disappeared.
    """
    with contextlib.suppress(Exception):
        subprocess.run(
            ["scancel", "--full", "--user", "root"],
            env=env,
            capture_output=True,
            timeout=15,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            res = subprocess.run(
                ["squeue", "--noheader", "-t", "PD,R,CG,S", "-o", "%i"],
                env=env,
                capture_output=True,
                text=True,
                timeout=10,
            )
            busy = res.returncode == 0 and res.stdout.strip()
        except Exception:
            busy = False
        steps = list(spool.glob("*.[0-9]*")) if spool.is_dir() else []
        if not busy and not steps:
            return
        time.sleep(0.5)


@contextlib.contextmanager
def local_slurm(
    base_dir: os.PathLike | str,
    *,
    start_timeout: float = 60,
    min_job_age: int = MIN_JOB_AGE,
) -> Iterator[SlurmCluster]:
    """Start munged + slurmctld + slurmd in ``base_dir``; stop them on exit.

    Raises :class:`SlurmUnavailable` when this machine cannot run it (not root,
    binaries missing) and :class:`SlurmStartError` (with the daemon logs) when
    the node is not idle within ``start_timeout`` seconds.
    """
    reason = unavailable_reason()
    if reason:
        raise SlurmUnavailable(reason)

    root = Path(base_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "run", "log", "munge"):
        (root / sub).mkdir(exist_ok=True)
    os.chmod(root / "munge", 0o700)

    # Unix socket paths are limited to 107 bytes; fall back to a short dir.
    sock_dir = root / "munge"
    short_sock_dir = None
    if len(str(sock_dir / "munge.socket.2")) > 100:
        short_sock_dir = Path(tempfile.mkdtemp(prefix="munge-"))
        sock_dir = short_sock_dir
    munge_socket = sock_dir / "munge.socket.2"

    node = socket.gethostname().split(".")[0]
    cpus, mem_mb = _detect_node()

    conf = root / "slurm.conf"
    conf.write_text(
        _slurm_conf(
            root=root,
            node=node,
            cpus=cpus,
            mem_mb=mem_mb,
            munge_socket=munge_socket,
            ctld_port=_free_port(),
            slurmd_port=_free_port(),
            min_job_age=min_job_age,
        )
    )
    key = root / "munge" / "munge.key"
    if not key.exists():
        _write_munge_key(key)

    env = dict(os.environ)
    env["SLURM_CONF"] = str(conf)
    # Don't let an outer SLURM job (e.g. CI running inside SLURM) leak in.
    for var in list(env):
        if (
            var.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_", "SINFO_"))
            and var != "SLURM_CONF"
        ):
            del env[var]
    # Snakemake's slurm-jobstep executor runs each rule inside the job with a
    # nested `srun`, after deleting every SLURM_* variable (SLURM_CONF too) from
    # its environment.  On a real cluster srun then finds /etc/slurm/slurm.conf
    # or the configless /run/slurm/conf; this throwaway cluster writes nothing
    # outside `root`, so a wrapper first on PATH restores SLURM_CONF for srun.
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "srun"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# tests/slurm_cluster.py: nested srun must reach the test cluster\n"
        f"SLURM_CONF={shlex.quote(str(conf))}\n"
        "export SLURM_CONF\n"
        f'exec {shlex.quote(_which("srun"))} "$@"\n'
    )
    wrapper.chmod(0o755)
    env["PATH"] = os.pathsep.join(
        [str(bin_dir), env.get("PATH", ""), "/usr/sbin", "/sbin"]
    )

    logs = {
        "munged": root / "log" / "munged.log",
        "slurmctld": root / "log" / "slurmctld.log",
        "slurmd": root / "log" / "slurmd.log",
    }
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, argv: list[str]) -> None:
        out = open(root / "log" / f"{name}.stdout", "wb")
        procs[name] = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal must not hit them first
            preexec_fn=_die_with_parent,
        )
        out.close()

    cluster = SlurmCluster(
        root=root,
        conf=conf,
        node=node,
        partition=PARTITION,
        cpus=cpus,
        real_memory_mb=mem_mb,
        env=env,
        pids={},
        logs=logs,
    )

    try:
        start(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={munge_socket}",
                f"--pid-file={root / 'run' / 'munged.pid'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
                f"--log-file={logs['munged']}",
            ],
        )
        _wait_for(lambda: munge_socket.exists(), 15, "munged socket", procs, cluster)

        start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(conf)])
        _wait_for(
            lambda: cluster.run("scontrol", "ping", check=False).stdout.count("UP") > 0,
            start_timeout,
            "slurmctld to answer 'scontrol ping'",
            procs,
            cluster,
        )
        start("slurmd", [_which("slurmd"), "-D", "-N", node, "-f", str(conf)])
        cluster.pids.update({n: p.pid for n, p in procs.items()})
        _wait_for(
            lambda: cluster.node_state().rstrip("*") == "idle",
            start_timeout,
            f"node {node} to become idle in sinfo",
            procs,
            cluster,
        )
        yield cluster
    finally:
        if "slurmd" in procs and procs["slurmd"].poll() is None:
            _cancel_jobs(env, root / "spool")
        _stop(procs)
        if short_sock_dir is not None:
            shutil.rmtree(short_sock_dir, ignore_errors=True)


def _wait_for(cond, timeout: float, what: str, procs, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        if dead:
            raise SlurmStartError(
                f"SLURM daemon(s) exited while waiting for {what}: {dead}\n"
                + cluster.log_tail()
            )
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.3)
    state = cluster.node_state() if "slurmctld" in procs else "n/a"
    raise SlurmStartError(
        f"timed out after {timeout:.0f}s waiting for {what} (node state: {state})\n"
        + cluster.log_tail()
    )


if __name__ == "__main__":  # manual debugging: start, print env, wait for Ctrl-C
    target = Path(
        sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="slurm-")
    )
    with local_slurm(target) as c:
        print(f"export SLURM_CONF={c.conf}   # pids: {c.pids}", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
