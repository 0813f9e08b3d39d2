"""FPGA boards: part, clock and resource budgets, from ``hardware/boards/<name>.yaml``."""

from __future__ import annotations

from pathlib import Path

import yaml

BOARD_DIR = Path(__file__).resolve().parents[3] / "hardware" / "boards"
REQUIRED = ("name", "finn_board", "part", "shell", "clock_mhz", "resources")
RESOURCES = ("LUT", "DSP", "BRAM_18K", "URAM")


def available_boards(board_dir=BOARD_DIR) -> list[str]:
    return sorted(p.stem for p in Path(board_dir).glob("*.yaml"))


def load_board(name: str, board_dir=BOARD_DIR, clock_mhz: float | None = None) -> dict:
    """The board definition ``<board_dir>/<name>.yaml``, checked; ``clock_mhz`` overrides its clock
    (``hardware.clock_mhz``: the paper's designs run at 100 MHz)."""
    path = Path(board_dir) / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"board {name!r}: no {path}; known boards: {available_boards(board_dir)}")
    board = yaml.safe_load(path.read_text())
    missing = [k for k in REQUIRED if k not in board]
    if missing:
        raise ValueError(f"{path} lacks {missing}")
    board["resources"] = {r: float(board["resources"].get(r, 0)) for r in RESOURCES}
    if board["shell"] not in ("zynq", "alveo"):
        raise ValueError(f"{path}: shell must be zynq or alveo, not {board['shell']!r}")
    board["clock_mhz"] = float(clock_mhz or board["clock_mhz"])
    return board
