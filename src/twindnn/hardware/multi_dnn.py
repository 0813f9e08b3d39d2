"""The twin and the 8-bit original built as ONE design with FINN+'s multi-DNN "Parallel" mode.

What FINN+ (finn-plus 1.6.1) does
---------------------------------
``DataflowBuildConfig.multi_dnn_config_path`` names a JSON file; with it set,
``build_dataflow_cfg`` ignores its model argument and ``cfg.steps`` and instead

1. wraps every ``Submodels[name]["model_path"]`` in a ``DNNContainer`` node of one wrapper graph
   (``MultiDNNWrapper``);
2. runs ``Steps``, a list of ``{step: targets}``, in order. Targets are submodel names (the step
   runs on each submodel with a copy of ``cfg`` whose ``output_dir`` is
   ``<output_dir>/../../<name>/<basename>`` and whose attributes are overridden by the other keys of
   ``Submodels[name]``, e.g. ``folding_config_file``), or the reserved ``"Multi_DNN_Wrapper"``
   (before collapsing) or ``"Collapsed_Model"`` (after), which run with ``cfg`` itself;
3. ``step_apply_multi_dnn`` reads ``Generation``: ``{"mode": "Parallel", "kwargs":
   {"combine_inputs_channelwise": bool, "combine_outputs_channelwise": bool}}`` (kwargs must be
   given: without them the step fails on an unbound name) and exposes each container's I/O;
   combining puts one input ``Split`` (-> ``SplitMultiHeads_hls``) before and one output
   ``Concat`` (-> ``StreamingConcat_hls``) after the networks, whose inputs must agree in shape
   (but channels) and datatype;
4. ``step_collapse_multi_dnn`` inlines the containers into one flat graph (tensors keep a
   ``<name>_`` prefix, nodes are renamed ``<op_type>_<n>``), specializes the split/concat, and
   ``step_maximize_concat_split_simd`` folds the concat.

``step_generate_estimate_reports`` then runs on the collapsed graph like on any single network
(``apply_to_subgraphs`` is only switched on for the cycle annotation), writing FINN+'s usual
report files for the joint design.

What was found
--------------
The estimate-only Parallel flow runs offline: none of the steps above needs Vivado, with the
same placeholders as the single builds (:func:`twindnn.hardware.finn_env.prepare_finn`).
On the repo's tiny twin/original pair (ZCU104) the joint report equals the sum of the two single
builds in LUT, DSP, BRAM_18K and URAM, node by node. Separate I/O (the default here) adds no
node; combined I/O adds one ``SplitMultiHeads_hls`` and one ``StreamingConcat_hls``, both with a
resource estimate of 0 and a few cycles (784 + 10 on the 28x28 pair), which lengthen only the
critical path. The joint ``max_cycles``/FPS is the slower network's; each network's own figures
come from its layers, told apart by their tensors' ``<name>_`` prefix.

The bitstream (``vivado=True``) runs the same post-collapse steps as the single builds
(:data:`~twindnn.hardware.finn_env.BITSTREAM_STEPS`: codegen, IP generation and FIFO sizing,
stitched IP, bitfile, driver, deployment package) behind ``prepare_finn(True)``. Parallel mode
has no ``NodeContainer``, so ``step_prepare_nodecontainer`` (SelectableWeights/PR only) is not run.
"""

from __future__ import annotations

import json
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper

from .boards import RESOURCES
from .estimate import read_reports, zero_estimated
from .finn_env import (
    BITSTREAM_STEPS,
    ESTIMATE_OUTPUTS,
    bitstream_options,
    build_config,
    prepare_finn,
    run_build,
    write_specialize_config,
)

NETWORKS = ("twin", "original")
SUBMODEL_STEPS = ["step_specialize_layers", "step_apply_folding_config"]
JOINT_ESTIMATE_STEPS = ["step_minimize_bit_width", "step_generate_estimate_reports"]
_MAXIMIZE_SIMD = "finn.transformation.multi_dnn.multi_dnn_steps.step_maximize_concat_split_simd"


def multi_dnn_config(models: dict, foldings: dict, *, combine_io: bool = False, vivado: bool = False,
                     specialize: dict | None = None) -> dict:
    """FINN+'s multi-DNN JSON for a Parallel build of ``models`` ({name: dataflow.onnx});
    ``specialize``: {name: specialize_layers_config_file} where a network's MACs are placed."""
    steps = [{s: list(models)} for s in SUBMODEL_STEPS]
    steps += [{"step_apply_multi_dnn": "Multi_DNN_Wrapper"}, {"step_collapse_multi_dnn": "Multi_DNN_Wrapper"}]
    if combine_io:
        steps.append({_MAXIMIZE_SIMD: "Collapsed_Model"})
    steps += [{s: "Collapsed_Model"} for s in JOINT_ESTIMATE_STEPS + (BITSTREAM_STEPS if vivado else [])]
    return {
        "Submodels": {name: {"model_path": str(Path(path).absolute()),
                             "folding_config_file": str(Path(foldings[name]).absolute()),
                             **({"specialize_layers_config_file": str(Path(specialize[name]).absolute())}
                                if specialize and specialize.get(name) else {})}
                      for name, path in models.items()},
        "Steps": steps,
        "Generation": {"mode": "Parallel", "kwargs": {"combine_inputs_channelwise": combine_io,
                                                      "combine_outputs_channelwise": combine_io}},
    }


def build_pair(twin_dataflow, original_dataflow, twin_folding, original_folding, board: dict, out_dir, *,
               vivado: bool = False, combine_io: bool = False, macs: dict | None = None) -> dict:
    """Build the twin and the original as one FINN+ Parallel design; the joint figures.

    ``*_dataflow`` are prepared models (:func:`~twindnn.hardware.finn_build.prepare_network`),
    ``*_folding`` their folding configs. ``combine_io`` feeds both networks from one 2-channel
    input stream and returns both logits in one stream (FINN+'s channel-wise combine); by default
    each network keeps its own input and output. With ``vivado`` the build goes on to the
    bitstream, driver and deployment package (needs Vivado: :class:`VivadoMissingError` otherwise).

    Returns FINN+'s joint reports as :func:`~twindnn.hardware.estimate.read_reports` reads them
    (``LUT``, ``DSP``, ``BRAM_18K``, ``URAM``, ``max_cycles``, ``estimated_throughput_fps``, ...,
    ``layers`` with a ``network`` each), plus ``networks``: per network its resource totals,
    ``max_cycles``, ``estimated_throughput_fps``, ``bottleneck_layer`` and host output scale, and
    ``interconnect``: the layers that belong to neither network. Files: ``out_dir/joint/build``
    (the joint build), ``out_dir/<network>/build`` (the per-network steps before collapsing).
    """
    prepare_finn(vivado)
    out_dir = Path(out_dir).absolute()
    models = {"twin": twin_dataflow, "original": original_dataflow}
    out_dir.mkdir(parents=True, exist_ok=True)
    specialize = {}
    for name, mac in (macs or {}).items():  # where each network's MACs go, as in its single build
        spec = write_specialize_config(models[name], mac, out_dir / f"specialize_{name}.json")
        if spec is not None:
            specialize[name] = spec
    config = multi_dnn_config(models, {"twin": twin_folding, "original": original_folding},
                              combine_io=combine_io, vivado=vivado, specialize=specialize)
    config_path = out_dir / "multi_dnn_config.json"
    config_path.write_text(json.dumps(config, indent=2))

    outputs, extra = list(ESTIMATE_OUTPUTS), {}
    if vivado:
        more, extra = bitstream_options(board)
        outputs += more
    # Two levels down: FINN+ puts each submodel's build at <output_dir>/../../<name>/build.
    build = out_dir / "joint" / "build"
    cfg = build_config(build, [], outputs, board["part"], board["clock_mhz"], standalone_thresholds=True,
                       save_intermediate_models=True, multi_dnn_config_path=str(config_path), **extra)
    # the model argument is unused in multi-DNN mode
    run_build(None, cfg, what="the multi-DNN Parallel design", scratch_dir=out_dir / "finn_tmp")
    return read_pair(build, board, {name: Path(path).parent / "host_output_scale.json"
                                    for name, path in models.items()})


def read_pair(build_dir, board: dict, host_scales: dict | None = None) -> dict:
    """The joint build's figures, and each network's share of them (see :func:`build_pair`)."""
    build_dir = Path(build_dir)
    model = ModelWrapper(str(build_dir / "intermediate_models" / "Collapsed_Model_step_generate_estimate_reports.onnx"))
    out = read_reports(build_dir / "report", board["clock_mhz"], model, board["part"],
                       uram=float(board["resources"]["URAM"]) > 0)
    owner = {n.name: network_of(n) for n in model.graph.node}
    for layer in out["layers"]:
        layer["network"] = owner.get(layer["layer"])
    out["networks"] = {}
    for name in NETWORKS:
        layers = [lay for lay in out["layers"] if lay["network"] == name]
        slowest = max(layers, key=lambda lay: lay["cycles"])
        scale = Path(host_scales[name]) if host_scales and host_scales.get(name) else None
        out["networks"][name] = {
            **{r: float(sum(lay[r] for lay in layers)) for r in RESOURCES},
            "max_cycles": int(slowest["cycles"]), "bottleneck_layer": slowest["layer"],
            "estimated_throughput_fps": board["clock_mhz"] * 1e6 / max(1, slowest["cycles"]),
            "zero_estimated": zero_estimated(layers), "layers": len(layers),
            "host_output": json.loads(scale.read_text()) if scale and scale.exists() else None,
        }
    out["interconnect"] = [lay for lay in out["layers"] if lay["network"] is None]
    return out


def network_of(node) -> str | None:
    """The network a collapsed node belongs to: the one ``<name>_`` prefix of all its tensors, else None."""
    owners = {name for t in (*node.input, *node.output) if t for name in NETWORKS if t.startswith(name + "_")}
    return owners.pop() if len(owners) == 1 else None


