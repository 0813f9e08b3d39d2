"""The gate registry: every gate against a plain numpy reference, and a new gate is one function."""

import numpy as np
import pytest
import torch

from twindnn import cascade, throughput


def _numpy_reference(logits: np.ndarray) -> dict[str, np.ndarray]:
    """The gates written out independently, from a numpy log-softmax."""
    z = logits.astype(np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    top2 = np.sort(p, axis=1)[:, -2:]
    raw2 = np.sort(z, axis=1)[:, -2:]
    return {"max_softmax": p.max(axis=1), "margin": top2[:, 1] - top2[:, 0], "entropy": (p * log_p).sum(axis=1),
            "logit_margin": raw2[:, 1] - raw2[:, 0]}


def test_registry_order_and_default():
    assert cascade.gate_names() == ["max_softmax", "margin", "entropy", "logit_margin"]
    assert cascade.DEFAULT_GATE == "max_softmax"
    assert list(cascade.GATES) == cascade.gate_names()
    assert all(g.name == name and g.description for name, g in cascade.GATES.items())
    with pytest.raises(ValueError, match="max_softmax, margin, entropy"):
        cascade.get_gate("energy")


@pytest.mark.parametrize("scale", [1.0, 30.0, 1000.0])
def test_each_gate_matches_the_numpy_reference(scale):
    logits = np.random.default_rng(0).normal(size=(300, 7)) * scale
    reference = _numpy_reference(logits)
    assert set(reference) == set(cascade.GATES)  # a new gate needs a reference here too
    for name, gate in cascade.GATES.items():
        scores = gate.confidence_fn(torch.from_numpy(logits))
        assert scores.shape == (len(logits),) and scores.dtype == torch.float64
        np.testing.assert_allclose(scores.numpy(), reference[name], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(cascade.confidence(logits, name), reference[name], rtol=1e-9, atol=1e-12)


def _logit_files(seed: int, n: int = 200, classes: int = 4):
    rng = np.random.default_rng(seed)
    twin, original = {}, {}
    for split in ("val", "test"):
        y = rng.integers(0, classes, n)
        for d, skill in ((twin, 1.0), (original, 4.0)):  # the original is the more accurate one
            d[f"{split}_logits"] = (rng.normal(size=(n, classes)) + skill * np.eye(classes)[y]).astype(np.float32)
            d[f"{split}_labels"] = y
    return twin, original


def test_a_new_gate_is_one_function():
    @cascade.register_gate("top_logit", "largest raw logit")
    def top_logit(logits):
        return logits.amax(dim=1)

    try:
        twin, original = _logit_files(3)
        logits = twin["test_logits"]
        expected = logits.max(axis=1).astype(np.float64)
        assert cascade.confidences(logits)["top_logit"] == pytest.approx(expected)
        assert cascade.confidence(logits, "top_logit") == pytest.approx(expected)

        table = cascade.sweep(logits, original["test_logits"], twin["test_labels"], "top_logit")
        assert set(table["gate"]) == {"top_logit"}
        assert table["threshold"].iloc[1:-1].to_numpy() == pytest.approx(np.unique(expected))

        sweep, points = cascade.run_cascade(twin, original, targets=[0.5, 0.9])  # default: every registered gate
        assert set(sweep["gate"]) == {*cascade.gate_names(), "oracle"}
        assert "top_logit" in set(points["gate"])
        # the chosen threshold, applied on test, gives what the registry's function gives
        row = points[points["gate"] == "top_logit"].iloc[0]
        assert row["test_forwarded_fraction"] == pytest.approx(np.mean(expected < row["threshold"]))
    finally:
        cascade.GATES.pop("top_logit", None)
    assert "top_logit" not in cascade.gate_names()


def test_oracle_is_not_a_gate_name():
    with pytest.raises(ValueError, match="reserved"):
        cascade.register_gate("oracle", "")


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


class Recorder(torch.nn.Module):
    """Remembers what it was given and answers class 0 for everything."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.zeros(len(x), x.shape[1])


def test_cascade_step_forwards_the_least_confident_under_the_chosen_gate():
    logits = np.random.default_rng(5).normal(size=(64, 6)) * 3
    reference = _numpy_reference(logits)
    batch = torch.from_numpy(logits).float()
    forwarded_sets = {}
    for name in cascade.GATES:
        original = Recorder()
        predictions = throughput.cascade_step(original, Identity(), batch, n_forward=10, gate=name)
        expected = set(np.argsort(reference[name], kind="stable")[:10].tolist())
        rows = {tuple(r) for r in original.seen[0].tolist()}
        assert rows == {tuple(batch[i].tolist()) for i in expected}
        assert (predictions[sorted(expected)] == 0).all()
        forwarded_sets[name] = frozenset(expected)
    assert len(set(forwarded_sets.values())) > 1  # the gates disagree here, so the gate really was used
    with pytest.raises(ValueError, match="valid gates"):
        throughput.cascade_step(Recorder(), Identity(), batch, n_forward=1, gate="energy")


def test_measure_throughput_records_its_gate():
    table = throughput.measure_throughput(
        Recorder(), Identity(), torch.randn(8, 3), [0.5], batch_size=8, warmup=0, repeats=1, gate="entropy"
    )
    assert table.loc[table["model"] == "cascade", "gate"].tolist() == ["entropy"]
    assert table.loc[table["model"] != "cascade", "gate"].isna().all()
    with pytest.raises(ValueError, match="valid gates"):
        throughput.measure_throughput(Recorder(), Identity(), torch.randn(8, 3), [0.5], batch_size=8, warmup=0, repeats=1,
                                      gate="energy")
