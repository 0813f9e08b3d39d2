"""On-board timing: copy a FINN+ deployment package to a board over SSH, run the
finn-plus-driver throughput test and a real-image accuracy check, fetch the report.

Needs a board host (``hardware.board_hosts.<board>`` in the config), passwordless SSH to it,
and ``finn-plus-driver`` installed on the board. Without a host :func:`run_on_board` refuses
(:class:`NoBoardError`) and the tables keep saying that every figure is a FINN+ estimate.
"""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import tempfile
from pathlib import Path

import numpy as np

BOARD_SCRIPT = Path(__file__).resolve().parents[3] / "hardware" / "board" / "twindnn_board_run.py"
HOST_LOOP = Path(__file__).resolve().parents[1] / "system" / "host_loop.py"
DRIVER_KEYS = {
    "throughput[images/s]": "measured_throughput_fps",
    "runtime[ms]": "runtime_ms",
    "DRAM_in_bandwidth[MB/s]": "dram_in_bandwidth_mb_s",
    "DRAM_out_bandwidth[MB/s]": "dram_out_bandwidth_mb_s",
    "fclk[mhz]": "fclk_reported_mhz",
    "batch_size": "batch_size",
    "fold_input[ms]": "fold_input_ms",
    "pack_input[ms]": "pack_input_ms",
    "copy_input_data_to_device[ms]": "copy_input_ms",
    "copy_output_data_from_device[ms]": "copy_output_ms",
    "unpack_output[ms]": "unpack_output_ms",
    "unfold_output[ms]": "unfold_output_ms",
}


class NoBoardError(RuntimeError):
    """On-board timing was asked for without a board host."""


def parse_driver_report(text_or_dict) -> dict:
    """The driver's throughput report (a dict, its JSON, or the printed Python dict) as plain
    columns; ``fclk_mhz_actual`` is kept and becomes the clock of record (on Zynq the
    reported ``fclk[mhz]`` is only the clock wizard's input)."""
    if isinstance(text_or_dict, dict):
        raw = text_or_dict
    else:
        text = str(text_or_dict).strip()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            # finn-plus-driver's CLI prints the dict's repr; take the last line that is one.
            lines = [ln for ln in text.splitlines() if ln.strip().startswith("{")]
            if not lines:
                raise ValueError("no throughput report (a dict) found in the driver's output") from err
            raw = ast.literal_eval(lines[-1].strip())
    if "throughput[images/s]" not in raw:
        raise ValueError(f"driver report lacks throughput[images/s]; keys: {sorted(raw)}")
    row = {DRIVER_KEYS.get(k, k.replace("[", "_").replace("]", "").replace("/", "_")): v for k, v in raw.items()}
    for k, v in list(row.items()):
        if isinstance(v, (int, float, np.number)):
            row[k] = float(v)
    row["clock_mhz"] = float(raw.get("fclk_mhz_actual", raw.get("fclk[mhz]", float("nan"))))
    row["source"] = "measured on board"
    return row


def _ssh(host: str, command: str, user: str | None, timeout: int) -> str:
    target = f"{user}@{host}" if user else host
    proc = subprocess.run(["ssh", "-o", "BatchMode=yes", target, command], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ssh {target} {command!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def _scp(sources: list, host: str, dest: str, user: str | None, timeout: int, fetch: bool = False) -> None:
    target = f"{user}@{host}" if user else host
    if fetch:
        cmd = ["scp", "-o", "BatchMode=yes", f"{target}:{sources[0]}", dest]
    else:
        cmd = ["scp", "-r", "-o", "BatchMode=yes", *map(str, sources), f"{target}:{dest}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def run_on_board(deploy_dir, images: np.ndarray, labels: np.ndarray, host: str | None, *, user: str | None = None,
                 remote_dir: str = "/home/xilinx/twindnn", batch_size: int = 100, logit_scale: float = 1.0,
                 python: str = "python3", sudo: bool = True, timeout: int = 1800) -> dict:
    """Copy ``deploy_dir`` (FINN's deploy/ folder: bitfile/ and driver/) to ``host``, time it, check accuracy."""
    if not host:
        raise NoBoardError("no board host configured (hardware.board_hosts.<board>): refusing to time on a board; "
                           "the tables report FINN+ estimates only.")
    deploy_dir = Path(deploy_dir)
    bitfiles = sorted(deploy_dir.glob("bitfile/*.bit")) + sorted(deploy_dir.glob("bitfile/*.xclbin"))
    settings = deploy_dir / "driver" / "settings.json"
    if not bitfiles or not settings.exists():
        raise FileNotFoundError(f"{deploy_dir} is no FINN+ deployment package (needs bitfile/*.bit and "
                                "driver/settings.json); build with hardware.vivado: true first.")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", np.ascontiguousarray(images))
        np.save(Path(tmp) / "labels.npy", np.asarray(labels, dtype=np.int64))
        report = _run_board_script(host, user, remote_dir, [deploy_dir / "bitfile", deploy_dir / "driver"], tmp,
                                   f"bitfile/{bitfiles[0].name} driver/settings.json images.npy labels.npy "
                                   f"{int(batch_size)} report.json {float(logit_scale)!r}", python, sudo, timeout)
    return parse_driver_report(report)


def _run_board_script(host, user, remote_dir, files, tmp, args: str, python: str, sudo: bool, timeout: int) -> dict:
    """Copy ``files``, the board script and ``tmp``'s images/labels to a fresh ``remote_dir``, run the
    script with ``args`` (writing report.json there) and return that report."""
    rd = shlex.quote(remote_dir)
    _ssh(host, f"rm -rf {rd} && mkdir -p {rd}", user, 60)
    _scp([*files, BOARD_SCRIPT, Path(tmp) / "images.npy", Path(tmp) / "labels.npy"], host, remote_dir, user, timeout)
    _ssh(host, f"cd {rd} && {'sudo -E ' if sudo else ''}{python} twindnn_board_run.py {args}", user, timeout)
    _scp([f"{remote_dir}/report.json"], host, str(Path(tmp) / "report.json"), user, 120, fetch=True)
    return json.loads((Path(tmp) / "report.json").read_text())


def run_pair_on_board(deploy_dir, images: np.ndarray, labels: np.ndarray, host: str | None, *, threshold: float,
                      scheduler: str, twin_scale: float, original_scale: float, user: str | None = None,
                      remote_dir: str = "/home/xilinx/twindnn_pair", batch_size: int = 100, python: str = "python3",
                      sudo: bool = True, timeout: int = 1800) -> dict:
    """Time the pair's one FINN+ Parallel design with the paper's host loop (``twindnn.system.host_loop``) on
    the board: both networks at once, forwarded inputs queued, fresh inputs to an idle original
    (``work_sharing``). Ports: input/output 0 the twin, 1 the original (the multi-DNN build's order)."""
    if not host:
        raise NoBoardError("no board host configured (hardware.board_hosts.<board>): refusing to time the pair; "
                           "the tables report the FINN+ estimates and the simulation only.")
    deploy_dir = Path(deploy_dir)
    bitfiles = sorted(deploy_dir.glob("bitfile/*.bit")) + sorted(deploy_dir.glob("bitfile/*.xclbin"))
    if not bitfiles or not (deploy_dir / "driver" / "settings.json").exists():
        raise FileNotFoundError(f"{deploy_dir} is no FINN+ deployment package of the pair; build it with "
                                "hardware.vivado: true first (rule hw_build_pair).")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", np.ascontiguousarray(images))
        np.save(Path(tmp) / "labels.npy", np.asarray(labels, dtype=np.int64))
        report = _run_board_script(
            host, user, remote_dir, [deploy_dir / "bitfile", deploy_dir / "driver", HOST_LOOP], tmp,
            f"pair bitfile/{bitfiles[0].name} driver/settings.json images.npy labels.npy {int(batch_size)} "
            f"report.json {float(twin_scale)!r} {float(original_scale)!r} {float(threshold)!r} "
            f"{shlex.quote(scheduler)} 0 1", python, sudo, timeout)
    report["source"] = "measured on board"
    return report

