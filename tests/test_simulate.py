"""The discrete-event simulator against the schedulers' closed forms, and its edge cases."""
import numpy as np
import pytest

from twindnn.system.model import original_direct_share, system_accuracy, system_fps
from twindnn.system.simulate import Accelerator, simulate


def stream(n, f, seed=0, twin_acc=0.7, orig_acc=0.9):
    rng = np.random.default_rng(seed)
    return rng.random(n) < f, rng.random(n) < twin_acc, rng.random(n) < orig_acc


@pytest.mark.parametrize("scheduler", ["work_sharing", "twin_first"])
@pytest.mark.parametrize("r_t, r_o, f", [
    (1000, 300, 0.2),   # work sharing: the original has spare capacity, takes new inputs
    (1000, 300, 0.5),   # the queue binds: r_o / f
    (300, 300, 0.1),    # a twin about as fast as the original: near 2x under work sharing
    (1000, 300, 0.0),   # nothing forwarded
    (1000, 300, 1.0),   # everything forwarded
    (100, 10_000, 0.3),  # the original much faster than the twin
    (10_000, 100, 0.3),  # the original much slower
])
def test_closed_forms_match_the_simulation(scheduler, r_t, r_o, f):
    forward, twin_ok, orig_ok = stream(20_000, f, seed=1)
    sim = simulate(forward, twin_ok, orig_ok, Accelerator(r_t), Accelerator(r_o), scheduler)
    f_seen = sim["forwarded_fraction"]  # the share of the inputs the twin saw that it forwarded
    assert f_seen == pytest.approx(f, abs=0.02)
    # the closed forms at the stream's own forwarded fraction
    assert sim["throughput_fps"] == pytest.approx(system_fps(r_t, r_o, f_seen, scheduler), rel=0.01)
    # accuracy: the cascade's on what the twin saw, the original's on what it took directly
    cascade = np.where(forward, orig_ok, twin_ok).mean()
    expected = system_accuracy(cascade, orig_ok.mean(), r_t, r_o, f_seen, scheduler)
    assert sim["accuracy"] == pytest.approx(expected, abs=0.01)
    assert sim["original_direct_share"] == pytest.approx(original_direct_share(r_t, r_o, f_seen, scheduler),
                                                         abs=0.01)


def test_twin_first_original_never_takes_new_inputs_and_queue_grows_when_it_is_the_bottleneck():
    forward, twin_ok, orig_ok = stream(5_000, 0.5)
    sim = simulate(forward, twin_ok, orig_ok, Accelerator(1000), Accelerator(100), "twin_first")
    assert sim["original_direct_share"] == 0.0
    # the twin forwards 500/s, the original takes 100/s: the queue holds most of the forwarded inputs
    assert sim["max_queue_depth"] > 0.7 * forward.sum()
    easy = simulate(forward, twin_ok, orig_ok, Accelerator(1000), Accelerator(10_000), "twin_first")
    assert easy["max_queue_depth"] <= 2


def test_latency_is_the_pipelines_plus_the_queue():
    forward = np.zeros(1000, dtype=bool)
    ok = np.ones(1000, dtype=bool)
    # nothing forwarded, twin_first: every answer is the twin's, latency exactly the twin's
    sim = simulate(forward, ok, ok, Accelerator(1000, latency_s=0.004), Accelerator(100), "twin_first")
    assert sim["mean_latency_ms"] == pytest.approx(4.0) and sim["p99_latency_ms"] == pytest.approx(4.0)
    everything = simulate(~forward, ok, ok, Accelerator(1000, latency_s=0.004), Accelerator(10_000, latency_s=0.002),
                          "twin_first")
    assert everything["p50_latency_ms"] == pytest.approx(6.0)  # twin, then straight to a fast original


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="one length"):
        simulate([True], [True, False], [True], Accelerator(1), Accelerator(1))
    with pytest.raises(ValueError, match="scheduler"):
        simulate([True], [True], [True], Accelerator(1), Accelerator(1), "round_robin")


def test_system_rows_are_replayed_on_the_test_split():
    import pandas as pd

    from twindnn.system.simulate import simulate_system_rows

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 4000)
    twin = {"test_logits": rng.normal(size=(4000, 3)) + 2 * np.eye(3)[labels], "test_labels": labels}
    orig = {"test_logits": rng.normal(size=(4000, 3)) + 5 * np.eye(3)[labels], "test_labels": labels}
    points = pd.DataFrame([{"gate": "max_softmax", "target_value": 0.9, "threshold": 0.8},
                           {"gate": "oracle", "target_value": np.nan, "threshold": np.nan}])
    system = pd.DataFrame([
        {"gate": "max_softmax", "target_value": 0.9, "scheduler": "work_sharing", "fits": True, "twin_fps": 1000.0,
         "original_fps": 400.0, "twin_latency_ms": 1.0, "original_latency_ms": 2.5},
        {"gate": "oracle", "target_value": np.nan, "scheduler": "twin_first", "fits": True, "twin_fps": 1000.0,
         "original_fps": 400.0, "twin_latency_ms": 1.0, "original_latency_ms": 2.5},
        {"gate": "oracle", "target_value": np.nan, "scheduler": "twin_first", "fits": False}])
    out = simulate_system_rows(system, points, twin, orig)
    from twindnn.cascade import confidence

    f = float((confidence(twin["test_logits"], "max_softmax") < 0.8).mean())
    assert out.loc[0, "simulated_throughput_fps"] == pytest.approx(system_fps(1000, 400, f), rel=0.02)
    oracle_f = float((twin["test_logits"].argmax(1) != labels).mean())
    assert out.loc[1, "simulated_throughput_fps"] == pytest.approx(system_fps(1000, 400, oracle_f, "twin_first"),
                                                                   rel=0.02)
    assert np.isnan(out.loc[2, "simulated_throughput_fps"])
