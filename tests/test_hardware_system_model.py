"""System model of TwinDNN on one FPGA: hand-computed cases."""
import math

import numpy as np
import pandas as pd
import pytest

from twindnn.hardware.colocate import best_pair, best_single, fits, system_rows
from twindnn.hardware.system_model import mean_latency_ms, system_fps

BOARD = {"name": "toy", "resources": {"LUT": 100.0, "DSP": 10.0, "BRAM_18K": 10.0, "URAM": 0.0}}


def test_parallel_throughput_is_limited_by_the_slower_stage():
    # twin 1000 FPS, original 300 FPS, 20 % forwarded: original can take 300/0.2 = 1500 inputs/s
    assert system_fps(1000, 300, 0.2, "parallel") == pytest.approx(1000)
    # 50 % forwarded: 300/0.5 = 600 < 1000
    assert system_fps(1000, 300, 0.5, "parallel") == pytest.approx(600)
    # nothing forwarded: the twin alone
    assert system_fps(1000, 300, 0.0, "parallel") == pytest.approx(1000)
    # everything forwarded: the original's rate
    assert system_fps(1000, 300, 1.0, "parallel") == pytest.approx(300)


def test_sequential_big_little_throughput():
    # 1 / (1/1000 + 0.5/300) = 1 / (0.001 + 0.0016667) = 375
    assert system_fps(1000, 300, 0.5, "sequential") == pytest.approx(375.0)
    assert system_fps(1000, 300, 0.0, "sequential") == pytest.approx(1000.0)
    np.testing.assert_allclose(system_fps([1000, 1000], [300, 300], [0.5, 0.0], "sequential"), [375, 1000])


def test_mean_latency_and_bad_inputs():
    assert mean_latency_ms(2.0, 10.0, 0.3) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        system_fps(1, 1, 1.5)
    with pytest.raises(ValueError):
        system_fps(1, 1, 0.5, "both")


def _designs(rows):
    return pd.DataFrame([{"estimated_throughput_fps": fps, "estimated_latency_ms": lat, "LUT": lut, "DSP": dsp,
                          "BRAM_18K": 1.0, "URAM": 0.0} for fps, lat, lut, dsp in rows])


def test_pair_search_respects_budget_and_maximises_system_fps():
    twin = _designs([(100, 1.0, 10, 0), (400, 0.5, 40, 0), (800, 0.3, 80, 0)])
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    # f = 0.25: (400, 200): min(400, 800) = 400 with LUT 80 <= 100; (800, *) needs LUT >= 90 -> (800, 50): min(800, 200)
    best = best_pair(twin, orig, BOARD, 0.25, "parallel", utilization=1.0)
    assert (best["twin_design"], best["original_design"]) == (1, 1)
    assert best["system_fps"] == pytest.approx(400)
    assert best["total_LUT"] <= 100 and best["total_DSP"] <= 10
    # at 85 % of the budget (LUT 85) the pair (1, 1) (LUT 80) still fits, (2, 0) (LUT 90) does not
    assert best_pair(twin, orig, BOARD, 0.25, "parallel", utilization=0.85)["system_fps"] == pytest.approx(400)
    # the original alone gets the whole device: its fastest folding that fits
    assert best_single(orig, BOARD, 1.0)["estimated_throughput_fps"] == 200
    assert not fits({"LUT": 101, "DSP": 0, "BRAM_18K": 0, "URAM": 0}, BOARD, 1.0)
    assert math.isinf(system_fps(0.0 + 1e300, 1, 0.0)) is False


def test_system_rows_one_per_point_with_gains():
    twin = _designs([(100, 1.0, 10, 0), (400, 0.5, 40, 0), (800, 0.3, 80, 0)])
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    points = pd.DataFrame([
        {"gate": "max_softmax", "target_kind": "accuracy_recovery", "target_value": 0.9, "forwarded_fraction": 0.25,
         "twin_accuracy": 0.5, "original_accuracy": 0.7, "system_accuracy": 0.68, "accuracy_recovery": 0.9},
        {"gate": "oracle", "target_kind": "oracle", "target_value": np.nan, "forwarded_fraction": 1.0,
         "twin_accuracy": 0.5, "original_accuracy": 0.7, "system_accuracy": 0.75, "accuracy_recovery": 1.25},
    ])
    rows = system_rows({**BOARD, "name": "toy"}, "w1a1", twin, orig, points, utilization=1.0)
    assert rows["gate"].tolist() == ["max_softmax", "oracle"]
    first = rows.iloc[0]
    # as in the pair search above: (400, 200) -> 400 FPS; the original alone gets 200 FPS
    assert first["twindnn_fps"] == pytest.approx(400) and first["original_alone_fps"] == 200
    assert first["throughput_gain"] == pytest.approx(2.0)
    assert first["mean_latency_ms"] == pytest.approx(0.5 + 0.25 * 3.0)
    # Big/Little at f = 0.25, best sequential pair: (400, 200) gives 1 / (1/400 + 0.25/200) = 266.7
    assert first["big_little_fps"] == pytest.approx(1 / (1 / 400 + 0.25 / 200))
    assert rows["fits"].all() and (rows["source"] == "FINN+ estimate").all()


def test_system_model_is_formulas_only():
    """No import from the package: colocate and the tables depend on it, never the other way round."""
    import ast

    import twindnn.hardware.system_model as system_model

    tree = ast.parse(open(system_model.__file__).read())
    # a relative import ("from .colocate import x") has a leading dot here
    imported = {"." * n.level + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "numpy"}


def test_fps_table_carries_the_graph_check(tmp_path):
    """Each estimate says how closely the FINN graph follows the trained network it stands for."""
    import pandas as pd

    from twindnn.hardware import tables

    resources = pd.DataFrame([
        {"board": "ZCU104", "twin": "w1a1", "network": net, "estimated_throughput_fps": fps,
         "estimated_latency_ms": 1.0, "clock_mhz": 187.5}
        for net, fps in (("twin", 9000.0), ("original", 3000.0), ("original_alone", 5000.0),
                         ("co-located (twin + original)", float("nan")))])
    checks = []
    for exported, agreement, graph_acc in (("twin_w1a1", 0.875, 0.578), ("original_q", 1.0, 0.7)):
        (tmp_path / exported).mkdir()
        path = tmp_path / exported / "streamline_check.csv"
        pd.DataFrame([{"images": 64, "prediction_agreement": agreement, "qonnx_accuracy": 0.516,
                       "graph_accuracy": graph_acc, "max_abs_logit_diff": 1.8}]).to_csv(path, index=False)
        checks.append(path)
    table = tables.fps_table(resources, [], checks).set_index("network")
    assert list(table.index) == ["twin", "original", "original_alone"]
    assert table.loc["twin", "graph_agreement_with_model"] == 0.875
    assert table.loc["twin", "graph_accuracy_on_check"] == 0.578
    assert table.loc["original_alone", "graph_agreement_with_model"] == 1.0
    assert (table["graph_check_images"] == 64).all()


def test_accuracy_vs_throughput_figure(tmp_path):
    import pandas as pd

    from twindnn.hardware import tables

    rows = []
    for gate in ("max_softmax", "margin", "oracle"):
        for target, f in ((0.5, 0.2), (0.9, 0.5)):
            rows.append({"board": "ZCU104", "twin": "w1a1", "gate": gate, "target_value": target,
                         "forwarded_fraction": f, "twindnn_fps": 3000 / f, "big_little_fps": 2000 / f,
                         "twindnn_accuracy": 0.5 + f / 5, "twin_alone_fps": 20000.0, "twin_accuracy": 0.5,
                         "original_alone_fps": 3000.0, "original_accuracy": 0.6, "fits": True})
    out = tmp_path / "fig.png"
    tables.accuracy_vs_throughput_figure(pd.DataFrame(rows), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
