"""Throughput measurement: structure of the table and the real cascade's behaviour (no absolute speeds)."""

import time

import pytest
import torch

from twindnn import throughput


class Sleeper(torch.nn.Module):
    """Takes ``seconds_per_image`` per input; logits are the first three input values."""

    def __init__(self, seconds_per_image: float):
        super().__init__()
        self.seconds_per_image = seconds_per_image

    def forward(self, x):
        time.sleep(self.seconds_per_image * len(x))
        return x.flatten(1)[:, :3]


class Recorder(torch.nn.Module):
    """Remembers what it was given and answers class 2 for everything."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.tensor([[0.0, 0.0, 1.0]]).repeat(len(x), 1)


def test_measure_throughput_table_and_cascade_cost_grows_with_f():
    images = torch.randn(16, 3, 2, 2)
    table = throughput.measure_throughput(
        Sleeper(0.002),
        Sleeper(0.0001),
        images,
        forwarded_fractions=[0.0, 0.5, 1.0],
        batch_size=8,
        warmup=1,
        repeats=3,
        device="cpu",
    )
    assert list(table.columns) == throughput.THROUGHPUT_COLUMNS
    assert table["model"].tolist() == ["original", "twin", "cascade", "cascade", "cascade"]
    assert table["gate"].tolist()[2:] == ["max_softmax"] * 3  # the default gate, on the cascade rows
    cascade = table[table["model"] == "cascade"]
    assert cascade["forwarded_per_batch"].tolist() == [0, 4, 8]
    assert cascade["forwarded_fraction"].tolist() == [0.0, 0.5, 1.0]
    # The original sleeps 2 ms per forwarded image, so each step adds >= 8 ms per batch.
    latencies = cascade["latency_ms"].to_numpy()
    assert latencies[0] < latencies[1] < latencies[2]
    assert latencies[2] - latencies[0] >= 15.0
    assert table["throughput_fps"].to_numpy() == pytest.approx(8 / (table["latency_ms"].to_numpy() / 1e3))
    per_image_s = table.set_index("model")["latency_ms"].iloc[:2] / 1e3 / 8
    expected_ideal = 1 / (per_image_s["twin"] + cascade["forwarded_fraction"] * per_image_s["original"])
    assert cascade["ideal_cascade_fps"].to_numpy() == pytest.approx(expected_ideal.to_numpy())
    assert table.loc[table["model"] != "cascade", "ideal_cascade_fps"].isna().all()
    assert (table["batch_size"] == 8).all() and (table["repeats"] == 3).all()
    assert table["device"].str.startswith("CPU ").all()
    assert table["note"].str.contains(r"measured on this machine \(CPU .*\), not FPGA").all()


def test_cascade_step_sends_the_least_confident_inputs_to_the_original():
    # Twin logits: rows 1 and 3 have the flattest softmax.
    twin_out = torch.tensor([[5.0, 0, 0], [0.1, 0, 0], [0, 4.0, 0], [0, 0.2, 0], [3.0, 0, 0]])
    twin = Sleeper(0.0)
    original = Recorder()
    predictions = throughput.cascade_step(original, twin, twin_out, n_forward=2)
    assert len(original.seen) == 1
    assert sorted(map(tuple, original.seen[0].tolist())) == sorted(map(tuple, twin_out[[1, 3]].tolist()))
    assert predictions.tolist() == [0, 2, 1, 2, 0]
    original.seen.clear()
    assert throughput.cascade_step(original, twin, twin_out, n_forward=0).tolist() == [0, 0, 1, 1, 0]
    assert original.seen == []


def test_preprocess_and_short_image_sets():
    images = torch.randint(0, 256, (3, 2, 2, 3), dtype=torch.uint8)  # N H W C, fewer than a batch
    seen = []

    def preprocess(x):
        seen.append(x.shape)
        return x.permute(0, 3, 1, 2).float() / 255

    table = throughput.measure_throughput(
        Sleeper(0.0), Sleeper(0.0), images, [0.25], batch_size=8, warmup=0, repeats=1, preprocess=preprocess
    )
    assert seen == [torch.Size([3, 2, 2, 3])]
    assert table.loc[table["model"] == "cascade", "forwarded_per_batch"].tolist() == [2]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        throughput.measure_throughput(Sleeper(0), Sleeper(0), torch.zeros(2, 3), [1.5], batch_size=2, warmup=0, repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        throughput.measure_throughput(Sleeper(0), Sleeper(0), torch.zeros(2, 3), [0.5], batch_size=2, warmup=0, repeats=0)


def test_describe_device():
    text = throughput.describe_device("cpu")
    assert text.startswith("CPU ") and "logical cores" in text and "torch threads" in text
    assert throughput.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_throughput_on_cuda():
    original = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    twin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))
    original(torch.zeros(1, 3, 16, 16))  # materialise the lazy layer
    images = torch.randint(0, 256, (32, 16, 16, 3), dtype=torch.uint8)
    table = throughput.measure_throughput(
        original,
        twin,
        images,
        [0.0, 1.0],
        batch_size=32,
        warmup=2,
        repeats=5,
        device="cuda",
        preprocess=lambda x: x.permute(0, 3, 1, 2).float() / 255,
    )
    assert table["device"].str.startswith("GPU ").all()
    assert table["note"].str.contains("not FPGA").all()
    assert (table["throughput_fps"] > 0).all()
