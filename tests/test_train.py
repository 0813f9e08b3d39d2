import copy
import io as _io
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from twindnn import config, data
from twindnn.launch import job_spec
from twindnn.steps import software as steps
from twindnn.train import cosine_lr, distillation_loss

CONFIG = config.validated({
    "run_name": "t",
    "dataset": {"name": "fashion_mnist", "image_size": 28, "val_fraction": 0.25},
    "original": {"model": "resnet18", "model_kwargs": {"channels": [8, 8, 8, 8]},
                 "training": {"epochs": 3, "batch_size": 16, "optimizer": "sgd", "lr": 0.05,
                              "weight_decay": 0.0, "augment": "crop"}},
    "twins": {"w1a2": {"weight_bits": 1, "act_bits": 2}},
    "twin": {"training": {"epochs": 2, "batch_size": 16, "optimizer": "adamw", "lr": 0.002,
                          "augment": "crop", "distill_alpha": 0.5}},
    "cascade": {}, "throughput": {},
    "compute": {"device": "cpu", "num_workers": 0, "seed": 3},
})


def io(cache, out, original=None):
    """(inputs, outputs) of a training step writing into ``out``."""
    inputs = {**data.split_paths(cache, "train", "val"), **({"original": original} if original else {})}
    return inputs, {"checkpoint": out / "m.pt", "metrics": out / "m.csv", "work_dir": out / "work"}


def train_original(cache, out, log, edit=None, **kwargs):
    cfg = copy.deepcopy(CONFIG)
    if edit:
        edit(cfg)
    return steps.train_original(config.train_original_stage(cfg), *io(cache, out), log=log, **kwargs)


@pytest.fixture
def cache(idx_dataset, tmp_path):
    cfg = {**CONFIG["dataset"], "root": str(idx_dataset)}  # fashion_mnist, 28 px, val_fraction 0.25
    data.prepare_dataset(cfg, tmp_path / "cache")
    return tmp_path / "cache"


def test_cosine_lr():
    assert cosine_lr(0, 100, 0, 1.0) == 1.0
    assert math.isclose(cosine_lr(50, 100, 0, 1.0), 0.5)
    assert cosine_lr(1, 100, 4, 1.0) == 0.5  # warm-up: (1 + 1) / 4


def test_distillation_loss_hand_case():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0]])
    labels = torch.tensor([0])
    # equal distributions: KL = 0, so the loss is (1 - alpha) * CE = 0.5 * ln 2
    assert math.isclose(distillation_loss(student, teacher, labels, 0.5, 2.0).item(), 0.5 * math.log(2), rel_tol=1e-6)
    assert math.isclose(distillation_loss(student, None, labels, 0.5, 2.0).item(), math.log(2), rel_tol=1e-6)


def test_resumed_run_starts_at_the_checkpoint_and_matches_an_uninterrupted_one(cache, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train_original(cache, full, _io.StringIO())
    # a run stopped after its first epoch, then re-run: it resumes from work/last.pt
    first = _io.StringIO()
    train_original(cache, part, first, stop_after_epoch=1)
    assert not (part / "m.pt").exists() and len(pd.read_csv(part / "m.csv")) == 1
    epoch1 = pd.read_csv(part / "m.csv")
    log = _io.StringIO()
    history = train_original(cache, part, log)
    assert f"resuming from {part / 'work' / 'last.pt'} after epoch 1" in log.getvalue()
    assert "epoch 1/3" not in log.getvalue() and "epoch 2/3" in log.getvalue()
    # epoch 1 was not re-trained: its row (wall time included) is the stopped run's
    assert history[0]["epoch_seconds"] == pytest.approx(epoch1["epoch_seconds"][0], rel=1e-12)
    a, b = pd.read_csv(full / "m.csv"), pd.read_csv(part / "m.csv")
    cols = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    sa, sb = torch.load(full / "m.pt")["state_dict"], torch.load(part / "m.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_weight_average_is_what_is_saved_and_resumes(cache, tmp_path):
    """With ema_decay the saved network is timm's ModelEmaV3 average, not the last weights, and a
    resumed run gets the average back: it ends where an uninterrupted run ends."""
    def with_ema(cfg):
        cfg["original"]["training"]["ema_decay"] = 0.9

    full, part, plain = tmp_path / "full", tmp_path / "part", tmp_path / "plain"
    train_original(cache, full, _io.StringIO(), edit=with_ema)
    train_original(cache, plain, _io.StringIO())
    train_original(cache, part, _io.StringIO(), edit=with_ema, stop_after_epoch=1)
    last = torch.load(part / "work" / "last.pt")
    assert any(not torch.equal(last["ema"][k], last["state_dict"][k]) for k in last["ema"])
    train_original(cache, part, _io.StringIO(), edit=with_ema)
    sa, sb = torch.load(full / "m.pt")["state_dict"], torch.load(part / "m.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    sp = torch.load(plain / "m.pt")["state_dict"]
    assert any(not torch.equal(sa[k], sp[k]) for k in sa if sa[k].is_floating_point())


def test_twin_trains_fused_with_a_weight_average(cache, tmp_path):
    """A twin (fused quantizers) with ema_decay saves the average: its logits step reads it."""
    train_original(cache, tmp_path / "o", _io.StringIO())
    cfg = copy.deepcopy(CONFIG)
    cfg["twin"]["training"]["ema_decay"] = 0.9
    inputs, outputs = io(cache, tmp_path / "t", original=tmp_path / "o" / "m.pt")
    log = _io.StringIO()
    steps.train_twin(config.train_twin_stage(cfg, "w1a2"), inputs, outputs, log=log)
    assert "activation quantizers fused" in log.getvalue()
    last = torch.load(outputs["work_dir"] / "last.pt")
    saved = torch.load(outputs["checkpoint"])["state_dict"]
    assert all(torch.equal(saved[k], last["ema"][k]) for k in saved)
    assert any(not torch.equal(saved[k], last["state_dict"][k]) for k in saved)
    acc = steps.logits(config.logits_stage(cfg), {"checkpoint": outputs["checkpoint"], **data.split_paths(cache, "val", "test")},
                       {"logits": tmp_path / "t.npz"})
    assert 0 <= acc["test_accuracy"] <= 1


def test_weight_average_refuses_scales_still_collecting_statistics():
    from twindnn.models import QuantSpec, create_original, create_twin
    from twindnn.train import _check_ema_possible

    original = create_original("resnet18", 10, 3, 16, layers=[1, 1, 1, 1], channels=(8, 8, 16, 16))
    _check_ema_possible(create_twin(original, QuantSpec("learned", 1, 2)))  # learned scales: fine
    with pytest.raises(ValueError, match="ema_decay.*collects activation statistics"):
        _check_ema_possible(create_twin(original, QuantSpec("calibrated", 1, 2, act_scaling="calibrated")))


def test_every_epoch_prints_one_progress_line(cache, tmp_path):
    progress, log = _io.StringIO(), _io.StringIO()
    history = train_original(cache, tmp_path, log, progress=progress)
    lines = progress.getvalue().splitlines()
    assert len(lines) == len(history) == 3
    for i, (line, row) in enumerate(zip(lines, history)):
        assert line.startswith(f"original: epoch {i + 1}/3, loss {row['train_loss']:.3f}, ")
        assert f"val acc {row['val_accuracy']:.1%}" in line and "images/s" in line and line.endswith(" min left")
    assert lines[-1].endswith(" 0.0 min left") and "original: epoch" not in log.getvalue()


def test_checkpoint_of_another_config_is_not_resumed(cache, tmp_path):
    train_original(cache, tmp_path, _io.StringIO(), stop_after_epoch=1)
    log = _io.StringIO()
    history = train_original(cache, tmp_path, log, edit=lambda c: c["original"]["training"].update(lr=0.02))
    assert "not resuming" in log.getvalue() and "training from scratch" in log.getvalue()
    assert [r["epoch"] for r in history] == [1, 2, 3] and "epoch 1/3" in log.getvalue()
    # and a changed architecture (a bad resume would fail on the weights' shapes) also starts fresh
    log = _io.StringIO()
    train_original(cache, tmp_path / "w", _io.StringIO(), stop_after_epoch=1)
    train_original(cache, tmp_path / "w", log,
                   edit=lambda c: c["original"].update(model_kwargs={"channels": [8, 8, 16, 16]}))
    assert "not resuming" in log.getvalue()


def test_unreadable_checkpoint_names_its_path_and_the_fix(cache, tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"last\.pt.*Delete it"):
        train_original(cache, tmp_path, _io.StringIO())


def test_twin_restarts_when_its_original_changes(cache, tmp_path):
    train_original(cache, tmp_path / "o", _io.StringIO())
    stage = config.train_twin_stage(CONFIG, "w1a2")
    inputs, outputs = io(cache, tmp_path / "t", original=tmp_path / "o" / "m.pt")
    steps.train_twin(stage, inputs, outputs, log=_io.StringIO(), stop_after_epoch=1)
    log = _io.StringIO()
    steps.train_twin(stage, inputs, outputs, log=log, stop_after_epoch=1)  # same original: resumes
    assert "resuming from" in log.getvalue()
    train_original(cache, tmp_path / "o", _io.StringIO(), edit=lambda c: c["compute"].update(seed=4))  # retrained
    log = _io.StringIO()
    steps.train_twin(stage, inputs, outputs, log=log)
    assert "not resuming" in log.getvalue()


def test_run_killed_mid_epoch_resumes_to_the_same_result(cache, tmp_path):
    """SIGKILL during epoch 2 (as a cluster's time limit would), then the same job again."""
    cfg = copy.deepcopy(CONFIG)
    cfg["original"]["training"].update(epochs=3, batch_size=4)
    stage = config.train_original_stage(cfg)
    steps.train_original(stage, *io(cache, tmp_path / "full"), log=_io.StringIO())

    inputs, outputs = io(cache, tmp_path / "part")
    job = tmp_path / "job.json"
    job.write_text(json.dumps(job_spec(stage, inputs, outputs)))  # same torch threads as this process
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "twindnn.cli", "train", "--job", str(job)],
                                stdout=log, stderr=log)
    last = outputs["work_dir"] / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not outputs["checkpoint"].exists()
    saved_epoch = torch.load(last, weights_only=False)["epoch"] + 1
    assert saved_epoch < 3

    log = _io.StringIO()
    steps.train_original(stage, inputs, outputs, log=log)
    assert f"after epoch {saved_epoch}" in log.getvalue()
    a, b = pd.read_csv(tmp_path / "full" / "m.csv"), pd.read_csv(outputs["metrics"])
    cols = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    sa, sb = torch.load(tmp_path / "full" / "m.pt")["state_dict"], torch.load(outputs["checkpoint"])["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fewer_images_than_one_batch_is_an_error(cache, tmp_path):
    with pytest.raises(data.DatasetError, match="fewer than one batch of 64"):
        train_original(cache, tmp_path, _io.StringIO(),
                       edit=lambda c: c["original"]["training"].update(batch_size=64))


def test_twin_trains_from_original_and_saves_logits(cache, tmp_path):
    train_original(cache, tmp_path / "o", _io.StringIO())
    inputs, outputs = io(cache, tmp_path / "t", original=tmp_path / "o" / "m.pt")
    history = steps.train_twin(config.train_twin_stage(CONFIG, "w1a2"), inputs, outputs, log=_io.StringIO())
    assert len(history) == 2 and all(np.isfinite(r["train_loss"]) for r in history)
    acc = steps.logits(config.logits_stage(CONFIG), {"checkpoint": outputs["checkpoint"], **data.split_paths(cache, "val", "test")},
                          {"logits": tmp_path / "t.npz"})
    with np.load(tmp_path / "t.npz") as z:
        assert z["test_logits"].shape == (20, 10) and z["val_logits"].shape == (15, 10)
        assert np.isclose(acc["test_accuracy"], (z["test_logits"].argmax(1) == z["test_labels"]).mean())
    with pytest.raises(config.ConfigError, match="not in twins"):
        config.train_twin_stage(CONFIG, "w9a9")


def test_cpu_amp_trains_in_bf16_and_saves_float32_weights(cache, tmp_path):
    """training.cpu_amp: convolutions run in bf16 on the CPU (the run differs from a float32 one),
    the saved weights stay float32, and a twin trains fused under it and gives logits."""
    from twindnn.train import _autocast

    conv = torch.nn.Conv2d(1, 2, 3)
    with _autocast(torch.device("cpu"), True, cpu=True):
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.bfloat16
    with _autocast(torch.device("cpu"), True, cpu=False):  # amp alone is for GPUs
        assert conv(torch.randn(1, 1, 5, 5)).dtype == torch.float32

    def bf16(cfg):
        cfg["original"]["training"]["cpu_amp"] = True
        cfg["original"]["training"]["epochs"] = 1

    def fp32(cfg):
        cfg["original"]["training"]["epochs"] = 1

    train_original(cache, tmp_path / "bf16", _io.StringIO(), edit=bf16)
    train_original(cache, tmp_path / "fp32", _io.StringIO(), edit=fp32)
    sa, sb = torch.load(tmp_path / "bf16" / "m.pt")["state_dict"], torch.load(tmp_path / "fp32" / "m.pt")["state_dict"]
    assert all(v.dtype == sb[k].dtype for k, v in sa.items())
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if sa[k].is_floating_point())
    cfg = copy.deepcopy(CONFIG)
    cfg["twin"]["training"].update(cpu_amp=True, epochs=1)
    inputs, outputs = io(cache, tmp_path / "t", original=tmp_path / "bf16" / "m.pt")
    steps.train_twin(config.train_twin_stage(cfg, "w1a2"), inputs, outputs, log=_io.StringIO())
    saved = torch.load(outputs["checkpoint"])["state_dict"]
    assert all(v.dtype != torch.bfloat16 for v in saved.values())
    acc = steps.logits(config.logits_stage(cfg), {"checkpoint": outputs["checkpoint"],
                                                  **data.split_paths(cache, "val", "test")}, {"logits": tmp_path / "t.npz"})
    assert 0 <= acc["test_accuracy"] <= 1


@pytest.mark.parametrize("native", [True, False])
def test_cpu_amp_auto_is_bf16_only_where_the_cpu_has_it(cache, tmp_path, monkeypatch, native):
    """training.cpu_amp: auto trains in bf16 where torch reports native bf16 (AVX512-BF16 or AMX)
    and in float32 elsewhere; the metrics say which; a run begun in one precision does not resume
    in the other."""
    from twindnn.train import _autocast, resolve_cpu_amp

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_cpu_amp("auto") is native and resolve_cpu_amp(True) and not resolve_cpu_amp(False)
    with pytest.raises(ValueError, match="use true, false or auto"):
        resolve_cpu_amp("false")  # a string that is not auto is refused, not read as true
    conv = torch.nn.Conv2d(1, 2, 3)
    with _autocast(torch.device("cpu"), True, cpu="auto"):
        assert conv(torch.randn(1, 1, 5, 5)).dtype == (torch.bfloat16 if native else torch.float32)

    def auto(cfg):
        cfg["original"]["training"].update(cpu_amp="auto", epochs=2)

    log = _io.StringIO()
    train_original(cache, tmp_path / "o", log, edit=auto, stop_after_epoch=1)
    precision = "bf16" if native else "float32"
    assert pd.read_csv(tmp_path / "o" / "m.csv")["precision"].tolist() == [precision]
    assert f"training precision: {precision}" in log.getvalue()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: not native)  # another machine
    log = _io.StringIO()
    train_original(cache, tmp_path / "o", log, edit=auto)
    assert "not resuming" in log.getvalue()
    assert pd.read_csv(tmp_path / "o" / "m.csv")["precision"].tolist() == ["float32" if native else "bf16"] * 2
