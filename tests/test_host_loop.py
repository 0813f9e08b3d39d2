"""The paper's host loop, driven against a simulated accelerator pair (service times, real logits)."""
import numpy as np
import pytest

from twindnn.cascade import confidence
from twindnn.system import host_loop
from twindnn.system.model import system_fps
from twindnn.system.simulate import Accelerator, simulate


def logits(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n)
    twin = rng.normal(size=(n, 5)) + 1.5 * np.eye(5)[labels]
    original = rng.normal(size=(n, 5)) + 4.0 * np.eye(5)[labels]
    return twin, original, labels


def test_board_gate_is_the_registrys_logit_margin():
    twin, _, _ = logits(50)
    np.testing.assert_allclose(host_loop.logit_margin(twin), confidence(twin, "logit_margin"))


@pytest.mark.parametrize("scheduler", ["work_sharing", "twin_first"])
def test_loop_over_a_simulated_pair_matches_the_model(scheduler):
    twin, original, labels = logits()
    threshold = 1.0
    forward = confidence(twin, "logit_margin") < threshold
    r_t, r_o = 2000.0, 800.0  # images/s of each simulated accelerator
    out = host_loop.run(host_loop.SimulatedPort(twin, 1 / r_t), host_loop.SimulatedPort(original, 1 / r_o),
                        None, labels, threshold, scheduler=scheduler)
    predicted = simulate(forward, twin.argmax(1) == labels, original.argmax(1) == labels, Accelerator(r_t),
                         Accelerator(r_o), scheduler)
    # the loop's decisions are the simulator's: same accuracy and shares up to the order of events
    assert out["accuracy"] == pytest.approx(predicted["accuracy"], abs=0.02)
    assert out["original_direct_share"] == pytest.approx(predicted["original_direct_share"], abs=0.02)
    if scheduler == "twin_first":
        assert out["original_direct_share"] == 0.0
        assert out["forwarded_fraction"] == pytest.approx(forward.mean())
    # measured on this machine's clock: the closed form within 10 % (Python overhead per event)
    expected = system_fps(r_t, r_o, out["forwarded_fraction"], scheduler)
    assert out["measured_throughput_fps"] == pytest.approx(expected, rel=0.10)


def test_every_input_is_answered_once_and_batches_work():
    twin, original, labels = logits(300)
    out = host_loop.run(host_loop.SimulatedPort(twin, 1e-5), host_loop.SimulatedPort(original, 3e-5), None, labels,
                        threshold=0.5, batch=16)
    # forwarding nothing and everything bracket the accuracy
    low = (twin.argmax(1) == labels).mean()
    high = (original.argmax(1) == labels).mean()
    assert low <= out["accuracy"] <= high and out["inputs"] == 300
    with pytest.raises(ValueError, match="scheduler"):
        host_loop.run(host_loop.SimulatedPort(twin, 1e-5), host_loop.SimulatedPort(original, 1e-5), None, labels,
                      0.5, scheduler="greedy")
