"""The board script's work-sharing pair mode, on a simulated FINN+ driver (no board here)."""
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hardware" / "board" / "twindnn_board_run.py"
WEIGHTS = [np.random.default_rng(k).normal(size=(4, 3)) for k in (0, 1)]  # network 0: twin, 1: original


class Register:
    """A DMA's AXI-lite registers: writing 1 to 0x00 starts it; 0x00 then reads done (0x2) and idle (0x4)."""

    def __init__(self, on_start):
        self.on_start, self.regs = on_start, {0x00: 0x4}

    def write(self, offset, value):
        self.regs[offset] = value
        if offset == 0x00 and value == 1:
            self.on_start(self.regs[0x1C])
            self.regs[0x00] = 0x2 | 0x4

    def read(self, offset):
        return self.regs.get(offset, 0)


class Buffer(np.ndarray):
    device_address = 0x1000_0000


class FakeAccel:
    """Two networks behind separate DMA channels, computing ``inputs @ WEIGHTS[k]``."""

    platform = "zynq-iodma"

    def __init__(self, bitfile, batch_size, **info):
        self.batch_size = batch_size
        self.ibuf_packed_device = [np.zeros((batch_size, 4)).view(Buffer) for _ in range(2)]
        self.obuf_packed_device = [np.zeros((batch_size, 3)).view(Buffer) for _ in range(2)]
        self.obuf_packed = [np.zeros((batch_size, 3)) for _ in range(2)]
        self.idma = [Register(lambda n, k=k: self._run(k, n)) for k in range(2)]
        self.odma = [Register(lambda n: None) for _ in range(2)]
        self.started = []

    def _run(self, k, count):
        self.started.append((k, count))
        self.obuf_packed_device[k][:count] = self.ibuf_packed_device[k][:count] @ WEIGHTS[k]

    def ishape_normal(self, i):
        return (self.batch_size, 4)

    def fold_input(self, x, ind=0):
        return x

    def pack_input(self, x, ind=0):
        return x

    def copy_input_data_to_device(self, data, ind=0):
        np.copyto(self.ibuf_packed_device[ind], data)

    def copy_output_data_from_device(self, data, ind=0):
        np.copyto(data, self.obuf_packed_device[ind])

    def unpack_output(self, x, ind=0):
        return x

    def unfold_output(self, x, ind=0):
        return x


@pytest.fixture
def board_script(monkeypatch):
    driver = types.ModuleType("finn_plus_driver")
    driver.get_driver_class = lambda name: FakeAccel
    monkeypatch.setitem(sys.modules, "finn_plus_driver", driver)
    monkeypatch.syspath_prepend(str(ROOT / "src" / "twindnn" / "system"))  # host_loop.py sits beside the script on a board
    spec = importlib.util.spec_from_file_location("twindnn_board_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scheduler", ["work_sharing", "twin_first"])
def test_pair_mode_answers_every_input_with_the_right_network(board_script, tmp_path, scheduler):
    rng = np.random.default_rng(5)
    images = rng.normal(size=(50, 4)).astype(np.float32)
    twin_logits, original_logits = images @ WEIGHTS[0], images @ WEIGHTS[1]
    labels = original_logits.argmax(1)  # the original is always right here
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    (tmp_path / "settings.json").write_text(json.dumps({"driver_information": {"driver_type": "fake"}}))
    out = tmp_path / "report.json"
    board_script.pair("x.bit", tmp_path / "settings.json", tmp_path / "images.npy", tmp_path / "labels.npy", 8,
                      out, 1.0, 1.0, 0.5, scheduler, 0, 1)
    report = json.loads(out.read_text())
    top2 = np.sort(twin_logits, axis=1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= 0.5
    if scheduler == "twin_first":
        # exactly the gate's decisions: confident inputs keep the twin's answer, the rest the original's
        expected = np.where(confident, twin_logits.argmax(1), labels)
        assert report["accuracy"] == pytest.approx((expected == labels).mean())
        assert report["original_direct_share"] == 0.0
    else:
        assert report["accuracy"] >= (np.where(confident, twin_logits.argmax(1), labels) == labels).mean()
    assert report["inputs"] == 50 and report["measured_throughput_fps"] > 0
