"""The FINN+ environment: the bottom of the hardware half, and the one place that sets FINN+ up.

Everything FINN+ needs before a build runs is here, written once: the set-up
(:func:`prepare_finn`), the build step lists, the build config (:func:`build_config`), the
specialize-layers file that places the matrix units' MACs (:func:`write_specialize_config`), the
bitstream options of a board (:func:`bitstream_options`) and the build runner (:func:`run_build`).
The estimate path, the builds and the multi-DNN build sit above it and import from it.

Estimate-only without Vivado
----------------------------
finn-plus 1.6.1 has no official estimate-only mode without a Vivado install. It works
once three things are done, and :func:`prepare_finn` is the only place that does them:

1. ``finn.util.settings.initialize_dummy_settings()`` (otherwise FINN demands its CLI);
2. ``finn.xsi.SimEngine`` is set before ``finn.builder.build_dataflow_steps`` is imported
   (the import otherwise loads Vivado's XSI simulator); a placeholder class is enough,
   since no estimate step simulates anything;
3. ``XILINX_VIVADO`` names a path (read only for the build's metadata).

Whole-array datatype checks
---------------------------
FINN+ 1.6.1 checks that a layer's weights or thresholds fit a datatype with
``np.vectorize(dt.allowed)(tensor)``: one Python call per element, although qonnx's
``DataType.allowed`` takes a whole array. In ``step_minimize_bit_width`` that check is most of
the step (about 5 s of each call on the default's original: 0.11 s per threshold layer, 5.9
million calls in one search), and the search and every build run the step again.
:func:`prepare_finn` (estimate and Vivado set-up alike) gives the FINN+ modules with such a check
(:data:`WHOLE_ARRAY_CHECK_MODULES`) a numpy whose ``vectorize`` of a qonnx ``DataType.allowed``
calls ``allowed`` once on the array. Float arrays are checked in float64 (``np.vectorize`` hands
``allowed`` Python floats: in float32 a bound such as 2**25 - 1 would round); datatypes wider than
52 bits, integer and object arrays, and anything else those modules vectorize go to numpy's own
``vectorize``. The answer is the same boolean array, element for element
(``tests/test_hardware_search.py::test_whole_array_datatype_checks_give_finn_plus_own_answers``
holds it to ``np.vectorize`` and holds minimized graphs and estimates equal with and without it).

With ``vivado=True`` none of these placeholders is installed: FINN is initialized
against the real ``XILINX_VIVADO`` (and refuses clearly where it is missing).

FINN+ modules that need this set-up (``finn.builder.build_dataflow``,
``finn.builder.build_dataflow_steps``, ``finn.util.settings``) are imported inside the functions
that call :func:`prepare_finn` first; the rest of FINN+ and qonnx import at module level.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import time
import types
from pathlib import Path

import numpy
from finn.builder.build_dataflow_config import DataflowBuildConfig, DataflowOutputType, ShellFlowType
from qonnx.core.datatype import BaseDataType

# Board-independent front end, run once per network: QONNX -> HW layers -> dataflow partition.
PREPARE_STEPS = [
    "step_qonnx_to_finn",
    "step_tidy_up",
    "step_residual_streamline",
    "step_convert_to_hw",
    "step_check_all_mapped",
    "step_minimize_bit_width_initial",
    "step_create_dataflow_partition",
]
# Per board and folding, from the prepared dataflow model.
ESTIMATE_STEPS = [
    "step_specialize_layers",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
]
BITSTREAM_STEPS = [
    "step_generate_hardware",
    "step_create_stitched_ip",
    "step_synthesize_bitfile",
    "step_make_driver",
    "step_deployment_package",
]


class UnmappedNodeError(RuntimeError):
    """A node that FINN could not map to a hardware layer (it would fall outside the dataflow partition)."""


class VivadoMissingError(RuntimeError):
    """A bitstream build was requested but Vivado is not installed or not on the environment."""


_PREPARED: str | None = None


def vivado_path() -> str | None:
    """The Vivado install named by ``XILINX_VIVADO`` (or found on PATH), else None."""
    env = os.environ.get("XILINX_VIVADO")
    if env and Path(env, "bin", "vivado").exists():
        return env
    exe = shutil.which("vivado")
    return str(Path(exe).parent.parent) if exe else None


def prepare_finn(vivado: bool = False) -> None:
    """Initialize finn-plus once per process: estimate-only placeholders, or the real Vivado.

    This is the single place where FINN+ is made to run without Vivado (see module docstring).
    """
    global _PREPARED
    mode = "vivado" if vivado else "estimate"
    if mode == _PREPARED:
        return
    if _PREPARED is not None:
        raise RuntimeError(f"FINN+ was already initialized for {_PREPARED!r} builds in this process.")
    if vivado:
        path = vivado_path()
        if path is None:
            raise VivadoMissingError(
                "hardware.vivado is true but no Vivado was found: set XILINX_VIVADO to a Vivado install "
                "(with bin/vivado) or put vivado on PATH, and for Alveo boards also Vitis (XILINX_VITIS) "
                "and the platform files. Set hardware.vivado: false for estimate-only builds."
            )
        os.environ["XILINX_VIVADO"] = path
    else:
        os.environ.setdefault("XILINX_VIVADO", "/nonexistent/vivado-not-needed-for-estimates")
        import finn.xsi  # only the estimate-only set-up touches the simulator module

        if "SimEngine" not in vars(finn.xsi):

            class _NoSimulator:  # estimate steps never simulate
                def __init__(self, *args, **kwargs):
                    raise RuntimeError("RTL simulation needs Vivado's XSI; this is an estimate-only FINN+ setup.")

            finn.xsi.SimEngine = _NoSimulator
    from finn.util import settings  # read after the environment above is set

    if getattr(settings, "_SETTINGS", None) is None:
        settings.initialize_dummy_settings()
    whole_array_checks()
    _PREPARED = mode


# --------------------------------------------------------------------------- whole-array datatype checks

# FINN+ modules that check tensors element by element with np.vectorize(<DataType>.allowed)
# (finn-plus 1.6.1; see the module docstring).
WHOLE_ARRAY_CHECK_MODULES = (
    "finn.custom_op.fpgadataflow.thresholding",
    "finn.custom_op.fpgadataflow.rtl.thresholding_rtl",
    "finn.custom_op.fpgadataflow.hls.thresholding_hls",
    "finn.custom_op.fpgadataflow.matrixvectoractivation",
    "finn.custom_op.fpgadataflow.hls.matrixvectoractivation_hls",
    "finn.custom_op.fpgadataflow.vectorvectoractivation",
    "finn.custom_op.fpgadataflow.hls.vectorvectoractivation_hls",
    "finn.custom_op.fpgadataflow.hls.lookup_hls",
    "finn.custom_op.fpgadataflow.rtl.pad1d_rtl",
)


def _allowed_on_array(allowed, value):
    """``np.vectorize(allowed)(value)`` with one call of ``allowed`` on the whole array (float
    arrays, in float64, for datatypes up to 52 bits: exact there), where it gives a boolean array
    of the same shape; numpy's own ``vectorize`` otherwise."""
    array = numpy.asarray(value)
    if array.dtype.kind == "f" and array.size and allowed.__self__.bitwidth() <= 52:
        out = numpy.asarray(allowed(array.astype(numpy.float64)))
        if out.shape == array.shape and out.dtype == bool:
            return out
    return numpy.vectorize(allowed)(value)


class _NumpyWholeArrayChecks(types.ModuleType):
    """numpy, except that ``vectorize`` of a qonnx ``DataType.allowed`` checks whole arrays."""

    def __getattr__(self, name):
        return getattr(numpy, name)

    @staticmethod
    def vectorize(pyfunc=None, *args, **kwargs):
        if (not args and not kwargs and getattr(pyfunc, "__name__", "") == "allowed"
                and isinstance(getattr(pyfunc, "__self__", None), BaseDataType)):
            return functools.partial(_allowed_on_array, pyfunc)
        return numpy.vectorize(pyfunc, *args, **kwargs)


_WHOLE_ARRAY_NUMPY = _NumpyWholeArrayChecks("numpy")


def whole_array_checks(enabled: bool = True) -> list[str]:
    """Give (``enabled``) or take back the whole-array datatype checks of the FINN+ modules in
    :data:`WHOLE_ARRAY_CHECK_MODULES` (see the module docstring); the modules changed."""
    changed = []
    for name in WHOLE_ARRAY_CHECK_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # another FINN+ version without this module: nothing to speed up there
            continue
        now = vars(module).get("np")
        if enabled and now is numpy:
            module.np = _WHOLE_ARRAY_NUMPY
            changed.append(name)
        elif not enabled and now is _WHOLE_ARRAY_NUMPY:
            module.np = numpy
            changed.append(name)
    return changed


# --------------------------------------------------------------------------- build config

MACS = ("auto", "lut", "dsp")
MATRIX_UNITS = ("MVAU", "VVAU")


def specialize_config(dataflow_onnx, mac: str) -> dict | None:
    """FINN's ``specialize_layers_config_file`` content for a MAC resource choice.

    ``auto``: FINN+ decides (RTL matrix units on DSPs where the widths fit); ``lut`` (the paper's
    twin): HLS matrix units, whose multipliers go to LUTs (``resType`` set by
    :func:`twindnn.hardware.estimate.mac_attributes`); ``dsp``: HLS units with ``resType="dsp"``
    where FINN+ would not pick an RTL one.
    """
    if mac not in MACS:
        raise ValueError(f"mac resource {mac!r}: use one of {', '.join(MACS)}")
    if mac != "lut":
        return None
    import onnx  # deferred: only the LUT placement reads the graph

    model = onnx.load(str(dataflow_onnx), load_external_data=False)
    return {"Defaults": {}, **{n.name: {"preferred_impl_style": "hls"} for n in model.graph.node
                               if n.op_type in MATRIX_UNITS}}


def write_specialize_config(dataflow_onnx, mac: str, path) -> Path | None:
    """Write :func:`specialize_config` to ``path``; None (and no file) where FINN+ decides alone."""
    spec = specialize_config(dataflow_onnx, mac)
    if spec is None:
        return None
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path


def bitstream_options(board: dict) -> tuple[list, dict]:
    """The outputs and config keys that take a build on to the bitstream, driver and deployment
    package for ``board`` (beyond the estimate reports)."""
    outputs = [DataflowOutputType.BITFILE, DataflowOutputType.PYNQ_DRIVER, DataflowOutputType.DEPLOYMENT_PACKAGE]
    shell = ShellFlowType.VITIS_ALVEO if board.get("shell") == "alveo" else ShellFlowType.VIVADO_ZYNQ
    return outputs, {"board": board["finn_board"], "shell_flow_type": shell}


ESTIMATE_OUTPUTS = [DataflowOutputType.ESTIMATE_REPORTS]


def build_config(output_dir, steps, outputs, fpga_part, clock_mhz, custom_steps: dict | None = None,
                 **extra) -> DataflowBuildConfig:
    """FINN+'s build config; ``custom_steps`` maps the names in ``steps`` that are this repository's
    own steps (:mod:`twindnn.hardware.streamline`) to their functions."""
    custom = custom_steps or {}
    return DataflowBuildConfig(
        output_dir=str(output_dir), synth_clk_period_ns=1000.0 / float(clock_mhz),
        steps=[custom.get(s, s) for s in steps], generate_outputs=outputs, fpga_part=fpga_part,
        verbose=False, enable_build_pdb_debug=False, **extra,
    )


def announced_steps(steps: list, what: str, progress) -> list:
    """FINN+ build steps (names or functions) that each print one line to ``progress`` when done:
    ``<what>: FINN+ step 3/12 step_qonnx_to_finn (12.3 s)``. Each keeps its name, which FINN+
    uses for the intermediate model files."""
    from finn.builder.build_dataflow_steps import build_dataflow_step_lookup  # needs prepare_finn() first

    fns = [build_dataflow_step_lookup[s] if isinstance(s, str) else s for s in steps]

    def announce(fn, i):
        @functools.wraps(fn)
        def step(model, cfg):
            start = time.perf_counter()
            out = fn(model, cfg)
            print(f"{what}: FINN+ step {i}/{len(fns)} {fn.__name__} ({time.perf_counter() - start:.1f} s)",
                  file=progress, flush=True)
            return out
        return step

    return [announce(fn, i) for i, fn in enumerate(fns, 1)]


def run_build(onnx_path, cfg, what: str | None = None, scratch_dir=None, progress=None) -> None:
    """Run FINN+'s ``build_dataflow_cfg``; a failed build raises :class:`UnmappedNodeError` (a node
    FINN could not map) or ``RuntimeError`` with the end of its log. FINN's scratch files go to
    ``scratch_dir`` (default: beside the build), not into the working directory. ``progress``:
    where a line per finished step goes (:func:`announced_steps`)."""
    from finn.builder.build_dataflow import build_dataflow_cfg  # needs prepare_finn() first
    from finn.util.settings import get_settings

    if progress is not None:
        cfg.steps = announced_steps(list(cfg.steps), what or str(onnx_path), progress)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    get_settings().finn_build_dir = Path(scratch_dir or Path(cfg.output_dir) / "finn_tmp").absolute()
    status = build_dataflow_cfg(None if onnx_path is None else str(onnx_path), cfg)
    if status != 0:
        log = Path(cfg.output_dir) / "build_dataflow.log"
        text = log.read_text() if log.exists() else ""
        if "could not map" in text:
            raise UnmappedNodeError(text[text.index("could not map"):].split("\n")[0])
        raise RuntimeError(f"FINN+ build of {what or onnx_path} failed (status {status}); see {log}:\n{text[-3000:]}")
