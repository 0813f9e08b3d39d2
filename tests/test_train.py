import math

import numpy as np
import pandas as pd
import pytest
import torch

from twindnn import data, pipeline
from twindnn.train import cosine_lr, distillation_loss

CONFIG = {
    "run_name": "t",
    "dataset": {"name": "fashion_mnist", "image_size": 28, "val_fraction": 0.25},
    "original": {"model": "resnet18", "model_kwargs": {"channels": [8, 8, 8, 8]},
                 "training": {"epochs": 3, "batch_size": 16, "optimizer": "sgd", "lr": 0.05,
                              "weight_decay": 0.0, "augment": "crop"}},
    "twins": {"w1a2": {"weight_bits": 1, "act_bits": 2}},
    "twin": {"training": {"epochs": 2, "batch_size": 16, "optimizer": "adamw", "lr": 0.002,
                          "augment": "crop", "distill_alpha": 0.5}},
    "compute": {"device": "cpu", "num_workers": 0, "seed": 3},
}


@pytest.fixture
def cache(idx_dataset, tmp_path):
    cfg = {"name": "fashion_mnist", "root": str(idx_dataset), "image_size": 28, "val_fraction": 0.25}
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


def test_resume_after_kill_matches_uninterrupted_run(cache, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    pipeline.train_original(CONFIG, cache, full / "m.pt", full / "m.csv", full / "work")
    # a run killed after its first epoch, then re-run: it resumes from work/last.pt
    pipeline.train_original(CONFIG, cache, part / "m.pt", part / "m.csv", part / "work", stop_after_epoch=1)
    assert not (part / "m.pt").exists() and len(pd.read_csv(part / "m.csv")) == 1
    pipeline.train_original(CONFIG, cache, part / "m.pt", part / "m.csv", part / "work")
    a, b = pd.read_csv(full / "m.csv"), pd.read_csv(part / "m.csv")
    cols = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    sa, sb = torch.load(full / "m.pt")["state_dict"], torch.load(part / "m.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_twin_trains_from_original_and_saves_logits(cache, tmp_path):
    pipeline.train_original(CONFIG, cache, tmp_path / "o.pt", tmp_path / "o.csv", tmp_path / "wo")
    history = pipeline.train_twin(CONFIG, "w1a2", cache, tmp_path / "o.pt", tmp_path / "t.pt", tmp_path / "t.csv",
                                  tmp_path / "wt")
    assert len(history) == 2 and all(np.isfinite(r["train_loss"]) for r in history)
    acc = pipeline.save_logits(CONFIG, tmp_path / "t.pt", cache, tmp_path / "t.npz", device="cpu")
    with np.load(tmp_path / "t.npz") as z:
        assert z["test_logits"].shape == (20, 10) and z["val_logits"].shape == (15, 10)
        assert np.isclose(acc["test_accuracy"], (z["test_logits"].argmax(1) == z["test_labels"]).mean())
    with pytest.raises(KeyError, match="not in config"):
        pipeline.train_twin(CONFIG, "w9a9", cache, tmp_path / "o.pt", tmp_path / "x.pt", tmp_path / "x.csv", tmp_path)
