"""FINN+ multi-DNN Parallel mode: the twin and the original as one design, estimated offline.

The joint estimate is compared with the two single builds (``build_network``) of the same
prepared models and foldings: equal node by node; combined I/O adds only FINN+'s split and concat.
"""
import json

import pytest

from test_hardware_finn import prepared  # noqa: F401  (the module-scoped fixture: small prepared twin/original)
from twindnn.hardware import finn_env
from twindnn.hardware.boards import load_board
from twindnn.hardware.estimate import RESOURCES, EstimatePath
from twindnn.hardware.finn_build import build_network
from twindnn.hardware.finn_env import VivadoMissingError
from twindnn.hardware.multi_dnn import NETWORKS, build_pair

BOARD = "ZCU104"


def _rows(layers):
    """A network's layers without their names (FINN+ renames nodes when it collapses the pair)."""
    return sorted((lay["op_type"], lay["cycles"], *(lay[r] for r in RESOURCES)) for lay in layers)


@pytest.fixture(scope="module")
def pair(prepared, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("multi_dnn")
    board = load_board(BOARD)
    dataflow, folding, single = {}, {}, {}
    for name in NETWORKS:
        dataflow[name] = prepared[name]["dataflow"]
        path = EstimatePath(dataflow[name], board)
        folding[name] = tmp / f"folding_{name}.json"
        folding[name].write_text(json.dumps(path.fold(2000, 8191)))
        single[name] = build_network(dataflow[name], tmp / "single" / name, board, folding[name])
    args = (dataflow["twin"], dataflow["original"], folding["twin"], folding["original"], board)
    return {"single": single, "board": board, "args": args,
            "separate": build_pair(*args, tmp / "separate"),
            "combined": build_pair(*args, tmp / "combined", combine_io=True)}


def test_parallel_estimate_equals_the_sum_of_the_single_builds(pair):
    single, joint = pair["single"], pair["separate"]
    for r in (*RESOURCES, "DSP_finn"):
        assert joint[r] == pytest.approx(sum(single[n][r] for n in NETWORKS)), r
    assert joint["interconnect"] == []  # separate I/O: no node beyond the two networks
    for name in NETWORKS:
        mine = [lay for lay in joint["layers"] if lay["network"] == name]
        assert _rows(mine) == _rows(single[name]["layers"]), name
        assert joint["networks"][name]["max_cycles"] == single[name]["max_cycles"]
        assert joint["networks"][name]["estimated_throughput_fps"] == pytest.approx(
            single[name]["estimated_throughput_fps"])
        for r in RESOURCES:
            assert joint["networks"][name][r] == pytest.approx(single[name][r])
    # FINN+'s joint figures are the slower network's.
    assert joint["max_cycles"] == max(single[n]["max_cycles"] for n in NETWORKS)
    assert joint["critical_path_cycles"] == max(single[n]["critical_path_cycles"] for n in NETWORKS)


def test_combined_io_adds_only_a_split_and_a_concat(pair):
    separate, combined = pair["separate"], pair["combined"]
    for r in RESOURCES:
        assert combined[r] == pytest.approx(separate[r]), r
    extra = combined["interconnect"]
    assert sorted(lay["op_type"] for lay in extra) == ["SplitMultiHeads_hls", "StreamingConcat_hls"]
    assert all(lay[r] == 0 for lay in extra for r in RESOURCES)  # FINN+ has no resource model for them
    for name in NETWORKS:
        assert _rows([lay for lay in combined["layers"] if lay["network"] == name]) == _rows(
            [lay for lay in separate["layers"] if lay["network"] == name])
    # They sit before and after both networks: only the critical path grows, by their cycles.
    assert combined["max_cycles"] == separate["max_cycles"]
    assert combined["critical_path_cycles"] == separate["critical_path_cycles"] + sum(lay["cycles"] for lay in extra)


def test_bitstream_needs_vivado(pair, tmp_path, monkeypatch):
    """vivado=True goes through prepare_finn(True), which refuses clearly without Vivado."""
    if finn_env.vivado_path() is not None:
        pytest.skip("Vivado is installed here")
    monkeypatch.setattr(finn_env, "_PREPARED", None)  # as in a fresh process
    with pytest.raises(VivadoMissingError, match="XILINX_VIVADO"):
        build_pair(*pair["args"], tmp_path / "bitstream", vivado=True)
    assert not (tmp_path / "bitstream").exists()
