"""System model of TwinDNN on one FPGA: hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from twindnn.hardware.colocate import best_alone, best_pair, fits, replicas_that_fit, system_rows
from twindnn.system.model import mean_latency_ms, original_direct_share, system_accuracy, system_fps, time_shared_fps

BOARD = {"name": "toy", "resources": {"LUT": 100.0, "DSP": 10.0, "BRAM_18K": 10.0, "URAM": 0.0}}


def test_twin_first_throughput_is_limited_by_the_slower_stage():
    # twin 1000 FPS, original 300 FPS, 20 % forwarded: original can take 300/0.2 = 1500 inputs/s
    assert system_fps(1000, 300, 0.2, "twin_first") == pytest.approx(1000)
    assert system_fps(1000, 300, 0.5, "twin_first") == pytest.approx(600)  # 300/0.5 = 600 < 1000
    assert system_fps(1000, 300, 0.0, "twin_first") == pytest.approx(1000)  # the twin alone
    assert system_fps(1000, 300, 1.0, "twin_first") == pytest.approx(300)  # the original's rate


def test_work_sharing_throughput_the_papers_closed_form():
    # f r_t = 200 <= r_o = 300: the twin's confident share plus everything the original does
    assert system_fps(1000, 300, 0.2, "work_sharing") == pytest.approx(1000 * 0.8 + 300)
    # f r_t = 500 > 300: the queue binds, r_o / f
    assert system_fps(1000, 300, 0.5, "work_sharing") == pytest.approx(600)
    # f = 0: both networks take new inputs; twin as fast as the original: 2x the original alone
    assert system_fps(300, 300, 0.0, "work_sharing") == pytest.approx(600)
    assert system_fps(1000, 300, 1.0, "work_sharing") == pytest.approx(300)
    # the original takes 300 - 200 = 100 of the 1100 answers directly
    assert original_direct_share(1000, 300, 0.2) == pytest.approx(100 / 1100)
    assert original_direct_share(1000, 300, 0.5) == pytest.approx(0.0)
    assert original_direct_share(1000, 300, 0.2, "twin_first") == 0.0
    # accuracy: the direct share gets the original's accuracy, the rest the cascade's
    assert system_accuracy(0.8, 0.9, 1000, 300, 0.2) == pytest.approx(0.8 + (0.9 - 0.8) * 100 / 1100)
    assert system_accuracy(0.8, 0.9, 1000, 300, 0.2, "twin_first") == pytest.approx(0.8)


def test_time_shared_big_little():
    # batch 1000: 1000/1000 s + 0.5 * 1000/300 s + 2 * 0.05 s
    assert time_shared_fps(1000, 300, 0.5, switch_ms=50, batch=1000) == pytest.approx(
        1000 / (1 + 0.5 * 1000 / 300 + 0.1))
    assert time_shared_fps(1000, 300, 0.0, switch_ms=50, batch=1000) == pytest.approx(1000)  # no switch


def test_mean_latency_and_bad_inputs():
    assert mean_latency_ms(2.0, 10.0, 0.3) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        system_fps(1, 1, 1.5)
    with pytest.raises(ValueError, match="work_sharing, twin_first"):
        system_fps(1, 1, 0.5, "both")


def _designs(rows):
    return pd.DataFrame([{"design": i, "estimated_throughput_fps": fps, "estimated_latency_ms": lat, "LUT": lut,
                          "DSP": dsp, "BRAM_18K": 1.0, "URAM": 0.0} for i, (fps, lat, lut, dsp) in enumerate(rows)])


def test_pair_search_respects_budget_and_maximises_the_schedulers_throughput():
    twin = _designs([(100, 1.0, 10, 0), (400, 0.5, 40, 0), (800, 0.3, 80, 0)])
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    # twin first, f = 0.25: (400, 200) -> min(400, 800) = 400 with LUT 80; (800, 50) -> min(800, 200) = 200
    best = best_pair(twin, orig, BOARD, 0.25, "twin_first", utilization=1.0)
    assert (best["twin_design"], best["original_design"]) == (1, 1)
    assert best["system_fps"] == pytest.approx(400)
    assert best["total_LUT"] <= 100 and best["total_DSP"] <= 10
    # work sharing: (400, 200) -> f r_t = 100 <= 200: 400 * 0.75 + 200 = 500; (800, 50) -> 200 > 50: 50 / 0.25
    ws = best_pair(twin, orig, BOARD, 0.25, "work_sharing", utilization=1.0)
    assert (ws["twin_design"], ws["original_design"]) == (1, 1) and ws["system_fps"] == pytest.approx(500)
    # at 75 % of the budget (DSP 7.5) the 200-FPS original (8 DSPs) no longer fits: (400, 50) is queue-bound,
    # 50 / 0.25 = 200, and beats (100, 50): 75 + 50 = 125
    assert best_pair(twin, orig, BOARD, 0.25, "work_sharing", utilization=0.75)["system_fps"] == pytest.approx(200)
    assert not fits({"LUT": 101, "DSP": 0, "BRAM_18K": 0, "URAM": 0}, BOARD, 1.0)
    assert not fits({"LUT": 90, "DSP": 0, "BRAM_18K": 0, "URAM": 0}, BOARD, 0.85)


def test_replication_and_whole_device_baselines():
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    # design 0 (LUT 10, DSP 2): DSP allows 5 copies -> 250 FPS beats design 1 once (200 FPS)
    assert replicas_that_fit(orig.iloc[0], BOARD, 1.0, max_replicas=8) == 5
    alone = best_alone(orig, BOARD, 1.0, max_replicas=8)
    assert (alone["design"], alone["replicas"], alone["fps"]) == (0, 5, 250)
    assert best_alone(orig, BOARD, 1.0, max_replicas=8, replicate=False)["fps"] == 200
    # replicas of both networks in the pair
    twin = _designs([(100, 1.0, 10, 0)])
    pair = best_pair(twin, orig, BOARD, 0.5, "twin_first", utilization=1.0, max_replicas=8)
    assert pair["total_LUT"] <= 100 and pair["total_DSP"] <= 10
    assert pair["system_fps"] == pytest.approx(min(pair["twin_fps"], pair["original_fps"] / 0.5))


def test_system_rows_have_the_four_baselines():
    twin = _designs([(100, 1.0, 10, 0), (400, 0.5, 40, 0), (800, 0.3, 80, 0)])
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    points = pd.DataFrame([
        {"gate": "max_softmax", "target_kind": "accuracy_recovery", "target_value": 0.9, "forwarded_fraction": 0.25,
         "twin_accuracy": 0.5, "original_accuracy": 0.7, "system_accuracy": 0.68, "accuracy_recovery": 0.9},
        {"gate": "oracle", "target_kind": "oracle", "target_value": np.nan, "forwarded_fraction": 1.0,
         "twin_accuracy": 0.5, "original_accuracy": 0.7, "system_accuracy": 0.75, "accuracy_recovery": 1.25},
    ])
    limits = {"twin": "fully unfolded", "original": "resources: LUT"}
    rows = system_rows(BOARD, "w1a1", twin, orig, points, utilization=1.0, limits=limits, max_replicas=1,
                       switch_ms=0.0, switch_batch=100)
    assert rows["gate"].tolist() == ["max_softmax"] * 2 + ["oracle"] * 2
    assert rows["scheduler"].tolist() == ["work_sharing", "twin_first"] * 2
    tf = rows[(rows["gate"] == "max_softmax") & (rows["scheduler"] == "twin_first")].iloc[0]
    assert tf["twindnn_fps"] == pytest.approx(400) and tf["original_alone_fps"] == 200
    assert tf["gain_vs_original_alone"] == pytest.approx(2.0)
    assert tf["original_in_pair_fps"] == 200 and tf["gain_vs_original_in_pair"] == pytest.approx(2.0)
    assert tf["twin_alone_fps"] == 800 and tf["gain_vs_twin_alone"] == pytest.approx(0.5)
    # time-shared: the twin's and the original's whole-device designs in turn, no switch cost here
    assert tf["time_shared_fps"] == pytest.approx(1 / (1 / 800 + 0.25 / 200))
    assert tf["original_alone_limit"] == "resources: LUT" and tf["twin_alone_limit"] == "fully unfolded"
    ws = rows[(rows["gate"] == "max_softmax") & (rows["scheduler"] == "work_sharing")].iloc[0]
    assert ws["twindnn_fps"] == pytest.approx(500) and ws["original_in_pair_fps"] == 200
    # the original answers 200 - 100 = 100 of the 500 per second directly, at its own accuracy
    assert ws["original_direct_share"] == pytest.approx(0.2)
    assert ws["twindnn_accuracy"] == pytest.approx(0.8 * 0.68 + 0.2 * 0.7)
    assert rows["fits"].all() and (rows["source"] == "FINN+ estimate").all()


def test_system_model_is_formulas_only():
    """No import from the package: colocate and the tables depend on it, never the other way round."""
    import ast

    import twindnn.system.model as system_model

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

    from twindnn.hardware import figures

    rows = []
    for gate in ("max_softmax", "margin", "oracle"):
        for target, f in ((0.5, 0.2), (0.9, 0.5)):
            rows.append({"board": "ZCU104", "twin": "w1a1", "gate": gate, "target_value": target,
                         "scheduler": "work_sharing", "cascade_accuracy": 0.5 + f / 6,
                         "forwarded_fraction": f, "twindnn_fps": 3000 / f, "time_shared_fps": 2000 / f,
                         "twindnn_accuracy": 0.5 + f / 5, "twin_alone_fps": 20000.0, "twin_accuracy": 0.5,
                         "original_alone_fps": 3000.0, "original_accuracy": 0.6, "fits": True})
    out = tmp_path / "fig.png"
    figures.accuracy_vs_throughput_figure(pd.DataFrame(rows), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
