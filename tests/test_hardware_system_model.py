"""System model of TwinDNN on one FPGA: hand-computed cases."""
import json

import numpy as np
import pandas as pd
import pytest

from twindnn.hardware.colocate import best_alone, best_pair, dsp_designs, system_rows, time_shared_rows
from twindnn.hardware.search import budget, fits
from twindnn.system.model import (
    mean_latency_ms,
    original_direct_share,
    system_accuracy,
    system_fps,
    time_shared_at_latency,
    time_shared_bound_fps,
    time_shared_fps,
)

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


def _designs(rows, mac="auto"):
    return pd.DataFrame([{"design": i, "mac": mac, "estimated_throughput_fps": fps, "estimated_latency_ms": lat,
                          "LUT": lut, "DSP": dsp, "BRAM_18K": 1.0, "URAM": 0.0}
                         for i, (fps, lat, lut, dsp) in enumerate(rows)])


def _cap(utilization):
    return budget(BOARD, utilization)


def test_pair_search_respects_budget_and_maximises_the_schedulers_throughput():
    twin = _designs([(100, 1.0, 10, 0), (400, 0.5, 40, 0), (800, 0.3, 80, 0)], "lut")
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    # twin first, f = 0.25, one instance each: (400, 200) -> min(400, 800) = 400. Free: one original of
    # 200 FPS (LUT 40, DSP 8) leaves LUT 60: twin d1 (400 FPS, LUT 40) and twice d0 (100 FPS, LUT 10)
    # -> min(600, 800) = 600 at LUT 100
    best = best_pair(twin, orig, _cap(1.0), 0.25, "twin_first", max_instances=1)
    assert best["counts"] == {"twin": {1: 1}, "original": {1: 1}} and best["fps"] == pytest.approx(400)
    free = best_pair(twin, orig, _cap(1.0), 0.25, "twin_first")
    assert free["fps"] == pytest.approx(600) and free["counts"] == {"twin": {0: 2, 1: 1}, "original": {1: 1}}
    assert free["resources"]["LUT"] <= 100 and free["resources"]["DSP"] <= 10
    # work sharing, one instance each: (400, 200) -> f r_t = 100 <= 200: 400 * 0.75 + 200 = 500
    ws = best_pair(twin, orig, _cap(1.0), 0.25, "work_sharing", max_instances=1)
    assert ws["counts"] == {"twin": {1: 1}, "original": {1: 1}} and ws["fps"] == pytest.approx(500)
    # at 75 % of the budget (DSP 7.5) the 200-FPS original (8 DSPs) no longer fits: (400, 50) is queue-bound,
    # 50 / 0.25 = 200, and beats (100, 50): 75 + 50 = 125
    assert best_pair(twin, orig, _cap(0.75), 0.25, "work_sharing", max_instances=1)["fps"] == pytest.approx(200)
    assert not fits({"LUT": 101, "DSP": 0, "BRAM_18K": 0, "URAM": 0}, BOARD, 1.0)
    assert not fits({"LUT": 90, "DSP": 0, "BRAM_18K": 0, "URAM": 0}, BOARD, 0.85)


def test_replication_and_mixes_in_the_whole_device_baselines():
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    # design 0 (LUT 10, DSP 2): DSP allows 5 copies -> 250 FPS beats design 1 once (200 FPS)
    alone = best_alone(orig, _cap(1.0))
    assert alone["counts"] == {"n": {0: 5}} and alone["fps"] == 250
    assert best_alone(orig, _cap(1.0), max_instances=1)["fps"] == 200
    # a LUT design beside the DSP ones: the mix uses the LUTs the DSP designs leave
    lut = _designs([(30, 5.0, 15, 0)], "lut").assign(design=[2])
    both = pd.concat([orig, lut], ignore_index=True)
    mixed = best_alone(both, _cap(1.0))
    assert mixed["counts"] == {"n": {0: 5, 2: 3}} and mixed["fps"] == 250 + 90  # LUT 50 + 45
    assert best_alone(dsp_designs(both), _cap(1.0))["fps"] == 250
    # replicas of both networks in the pair
    twin = _designs([(100, 1.0, 10, 0)], "lut")
    pair = best_pair(twin, orig, _cap(1.0), 0.5, "twin_first")
    assert pair["resources"]["LUT"] <= 100 and pair["resources"]["DSP"] <= 10
    assert pair["fps"] == pytest.approx(min(pair["rates"]["twin"], pair["rates"]["original"] / 0.5))


def test_system_rows_have_every_baseline():
    twin = _designs([(100, 1.0, 10, 0), (400, 0.5, 40, 0), (800, 0.3, 80, 0)], "lut")
    orig = _designs([(50, 5.0, 10, 2), (200, 3.0, 40, 8)])
    points = pd.DataFrame([
        {"gate": "max_softmax", "target_kind": "accuracy_recovery", "target_value": 0.9, "forwarded_fraction": 0.25,
         "twin_accuracy": 0.5, "original_accuracy": 0.7, "system_accuracy": 0.68, "accuracy_recovery": 0.9},
        {"gate": "oracle", "target_kind": "oracle", "target_value": np.nan, "forwarded_fraction": 1.0,
         "twin_accuracy": 0.5, "original_accuracy": 0.7, "system_accuracy": 0.75, "accuracy_recovery": 1.25},
    ])
    rows = system_rows(BOARD, "w1a1", twin, orig, points, utilization=1.0, max_replicas=1,
                       sensitivity={"LUT": 2.0})
    assert rows["gate"].tolist() == ["max_softmax"] * 2 + ["oracle"] * 2
    assert rows["scheduler"].tolist() == ["work_sharing", "twin_first"] * 2
    tf = rows[(rows["gate"] == "max_softmax") & (rows["scheduler"] == "twin_first")].iloc[0]
    assert tf["twindnn_fps"] == pytest.approx(400) and tf["original_alone_fps"] == 200
    assert tf["gain_vs_original_alone"] == pytest.approx(2.0)
    assert tf["original_in_pair_fps"] == 200 and tf["gain_vs_original_in_pair"] == pytest.approx(2.0)
    assert tf["twin_alone_fps"] == 800 and tf["gain_vs_twin_alone"] == pytest.approx(0.5)
    assert tf["original_dsp_alone_fps"] == 200  # every design of this original is a DSP one
    assert "max_replicas (1) binds" in tf["original_alone_limit"]
    # time-shared bound: the twin's and the original's whole-device mixes in turn, batch without end
    assert tf["time_shared_bound_fps"] == pytest.approx(1 / (1 / 800 + 0.25 / 200))
    assert tf["twin_mix"] == "1x d1 (lut)" and json.loads(tf["original_counts"]) == {"1": 1}
    # LUT estimates doubled: the chosen pair (LUT 80) would need 160 of 100, and the pair placed again
    assert not tf["sensitivity_fits"] and tf["sensitivity_twindnn_fps"] < tf["twindnn_fps"]
    ws = rows[(rows["gate"] == "max_softmax") & (rows["scheduler"] == "work_sharing")].iloc[0]
    assert ws["twindnn_fps"] == pytest.approx(500) and ws["original_in_pair_fps"] == 200
    # the original answers 200 - 100 = 100 of the 500 per second directly, at its own accuracy
    assert ws["original_direct_share"] == pytest.approx(0.2)
    assert ws["twindnn_accuracy"] == pytest.approx(0.8 * 0.68 + 0.2 * 0.7)
    assert rows["fits"].all() and (rows["source"] == "FINN+ estimate").all()
    # (c) at a latency budget: the largest batch whose latency (two rounds less the switch back) fits in 100 ms
    timed = time_shared_rows(rows, switch_ms=10.0, latency_budget_ms=100.0)
    t = timed.iloc[1]
    per_input = 1 / 800 + 0.25 / 200
    batch = int((0.1 - 0.03) / (2 * per_input))
    assert t["time_shared_batch"] == batch and t["time_shared_meets_latency"]
    assert t["time_shared_fps"] == pytest.approx(batch / (batch * per_input + 0.02))
    assert t["gain_vs_time_shared"] == pytest.approx(t["twindnn_fps"] / t["time_shared_fps"])
    assert t["time_shared_fps"] < t["time_shared_bound_fps"]
    # a budget that two switches alone overrun: no throughput at that latency, and no gain over it
    late = time_shared_rows(rows, switch_ms=10.0, latency_budget_ms=30.0).iloc[1]
    assert not late["time_shared_meets_latency"] and np.isnan(late["time_shared_fps"])
    assert np.isnan(late["gain_vs_time_shared"]) and "no batch meets the 30.0 ms budget" in late["time_shared_limit"]
    # its gain carries no interval: the baseline moves with the forwarded share as TwinDNN does
    assert "gain_vs_time_shared_ci95_low" not in timed


def test_time_shared_at_a_latency_budget():
    got = time_shared_at_latency(1000, 300, 0.5, switch_ms=50, latency_budget_ms=1000)
    per_input = 1 / 1000 + 0.5 / 300
    assert got["batch"] == int((1.0 - 0.15) / (2 * per_input)) and got["meets"]
    # a forwarded input: its batch fills (one round), then it waits for the twin's batch, a switch and its own answer
    round_s = got["batch"] * per_input + 0.1
    assert got["latency_ms"] == pytest.approx((2 * round_s - 0.05) * 1e3) and got["latency_ms"] <= 1000 + 1e-9
    # a budget below three switches: a batch of one, and it says the budget is missed
    tight = time_shared_at_latency(1000, 300, 0.5, switch_ms=50, latency_budget_ms=150)
    assert tight["batch"] == 1 and not tight["meets"]
    # nothing forwarded: no switch, the twin's rate
    assert time_shared_at_latency(1000, 300, 0.0, 50, 10)["fps"] == pytest.approx(1000)
    assert time_shared_bound_fps(1000, 300, 0.5) == pytest.approx(1 / per_input)


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


def test_a_twin_has_one_colour_in_every_figure_and_the_recovery_axis_spans_the_points():
    import pandas as pd
    from matplotlib.figure import Figure

    from twindnn.hardware.figures import _recovery_axis
    from twindnn.plotting import twin_colours

    # the CPU figure lists the twins in the summary's order, the FPGA figures in the headline's
    assert twin_colours(["w1a1", "t2a8"]) == twin_colours(["t2a8", "w1a1", "t2a8"])
    assert twin_colours(["w1a1", "t2a8"])["t2a8"] != twin_colours(["w1a1", "t2a8"])["w1a1"]
    # a twin within a point of the original: recovery intervals of -30 to 250 % around 1.07
    rows = pd.DataFrame({"accuracy_recovery": [1.07, 1.10], "accuracy_recovery_ci95_low": [-0.3, -0.3],
                         "accuracy_recovery_ci95_high": [2.5, 2.5]})
    ax = Figure().subplots()
    _recovery_axis(ax, rows, 0.94)
    low, high = ax.get_xlim()
    assert 0.8 < low < 0.94 and 1.10 < high < 1.3
    assert any("run past the axis" in t.get_text() for t in ax.texts)
