"""FINN+ builds of the twin and the 8-bit original: the board-independent front end once per
network (:func:`prepare_network`), then one build per board and folding (:func:`build_network`):
estimate-only everywhere, on to the bitstream with Vivado.

The FINN+ set-up, step lists and build config live in :mod:`twindnn.hardware.finn_env`; the
repository's own front-end steps in :mod:`twindnn.hardware.streamline`; the reader of the
estimate reports, which the search uses too, in :mod:`twindnn.hardware.estimate`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from .estimate import read_reports
from .finn_env import (
    BITSTREAM_STEPS,
    ESTIMATE_OUTPUTS,
    ESTIMATE_STEPS,
    PREPARE_STEPS,
    bitstream_options,
    build_config,
    prepare_finn,
    run_build,
    write_specialize_config,
)
from .streamline import CUSTOM_STEPS


def prepare_network(onnx_path, output_dir, fpga_part: str = "xczu7ev-ffvc1156-2-e", progress=None) -> Path:
    """Front end (board-independent): the dataflow model with every node a HW layer.

    Returns the path of ``dataflow.onnx`` in ``output_dir`` (``host_output_scale.json`` beside it).
    ``fpga_part`` only matters for FINN's bookkeeping here; specialization happens per board.
    ``progress``: where a line per finished FINN+ step goes.
    """
    prepare_finn(False)
    output_dir = Path(output_dir)
    work = output_dir / "build"
    cfg = build_config(work, PREPARE_STEPS, ESTIMATE_OUTPUTS, fpga_part, 100.0, custom_steps=CUSTOM_STEPS,
                       target_fps=1, standalone_thresholds=True)
    run_build(onnx_path, cfg, what=f"FINN+ front end of {Path(onnx_path).name}", progress=progress)
    out = output_dir / "dataflow.onnx"
    shutil.copy(work / "intermediate_models" / "step_create_dataflow_partition.onnx", out)
    shutil.copy(work / "report" / "host_output_scale.json", output_dir / "host_output_scale.json")
    return out


def build_network(dataflow_onnx, output_dir, board: dict, folding_config, *, vivado: bool = False,
                  mac: str = "auto") -> dict:
    """Per-board build from the prepared model with a folding config: estimates, or (``vivado``)
    on to the bitstream, driver and deployment package. ``mac``: the matrix units' resource
    (:func:`twindnn.hardware.finn_env.specialize_config`). Returns :func:`read_estimates`."""
    prepare_finn(vivado)
    steps, outputs, extra = list(ESTIMATE_STEPS), list(ESTIMATE_OUTPUTS), {}
    if vivado:
        more, extra = bitstream_options(board)
        steps, outputs = steps + BITSTREAM_STEPS, outputs + more
    spec = write_specialize_config(dataflow_onnx, mac, Path(output_dir) / "specialize_config.json")
    if spec is not None:
        extra["specialize_layers_config_file"] = str(spec)
    cfg = build_config(output_dir, steps, outputs, board["part"], board["clock_mhz"],
                       folding_config_file=str(folding_config), standalone_thresholds=True, **extra)
    run_build(dataflow_onnx, cfg)
    return read_estimates(output_dir, board)


def read_estimates(output_dir, board: dict) -> dict:
    """A build's figures, read as the search reads them (:func:`twindnn.hardware.estimate.read_reports`)."""
    output_dir = Path(output_dir)
    model = ModelWrapper(str(output_dir / "intermediate_models" / "step_generate_estimate_reports.onnx"))
    out = read_reports(output_dir / "report", board["clock_mhz"], model, board["part"],
                       uram=float(board["resources"]["URAM"]) > 0)
    scale_file = output_dir / "report" / "host_output_scale.json"
    out["host_output"] = json.loads(scale_file.read_text()) if scale_file.exists() else None
    return out
