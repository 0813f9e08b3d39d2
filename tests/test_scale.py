"""Paper-scale code paths on small data: DDP (torchrun, gloo on the CPU), ImageNet layout, benchmark."""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from test_train import CONFIG
from twindnn import config, data
from twindnn.benchmark import benchmark_training
from twindnn.launch import run_training

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(idx_dataset, tmp_path):
    cfg = {**CONFIG["dataset"], "root": str(idx_dataset)}  # fashion_mnist, 28 px, val_fraction 0.25
    data.prepare_dataset(cfg, tmp_path / "cache")
    return tmp_path / "cache"


def test_ddp_two_processes(cache, tmp_path):
    """gpus=2 launches torchrun; on the CPU the two ranks train with gloo and one checkpoint is written."""
    cfg = copy.deepcopy(CONFIG)
    cfg["original"]["training"]["epochs"] = 1
    inputs = data.split_paths(cache, "train", "val")
    outputs = {"checkpoint": tmp_path / "m.pt", "metrics": tmp_path / "m.csv", "work_dir": tmp_path / "work"}
    with open(tmp_path / "log.txt", "w") as log:
        run_training(config.train_original_stage(cfg), inputs, outputs, gpus=2, log=log)
    metrics = pd.read_csv(tmp_path / "m.csv")
    assert metrics["world_size"].tolist() == [2]
    assert (tmp_path / "m.pt").exists()
    assert "nproc_per_node=2" in (tmp_path / "log.txt").read_text()


def _imagenet_folder(root: Path, wnids, per_class=6, val_per_class=2):
    """ImageNet layout: train/<wnid>/*.JPEG and a FLAT val/ with a LOC_val_solution.csv."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["ImageId,PredictionString"]
    n = 0
    for k, wnid in enumerate(wnids):
        (root / "train" / wnid).mkdir(parents=True)
        colour = np.zeros(3)
        colour[k % 3] = 200
        for i in range(per_class + val_per_class):
            pixels = np.clip(colour + rng.normal(0, 20, (90, 120, 3)), 0, 255).astype(np.uint8)
            if i < per_class:
                Image.fromarray(pixels).save(root / "train" / wnid / f"{wnid}_{i}.JPEG")
            else:
                n += 1
                (root / "val").mkdir(exist_ok=True)
                Image.fromarray(pixels).save(root / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
                rows.append(f"ILSVRC2012_val_{n:08d},{wnid} 1 2 3 4")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    # real-world oddities: a greyscale JPEG in an RGB dataset, a file name with an apostrophe
    grey = np.clip(rng.normal(120, 30, (90, 120)), 0, 255).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(root / "train" / wnids[0] / "grey_scan.JPEG")
    Image.fromarray(pixels).save(root / "train" / wnids[1] / "it's_a_photo.JPEG")


def test_imagenet_flat_val_is_sorted_by_ground_truth(tmp_path):
    wnids = ["n01440764", "n01443537", "n01484850"]
    _imagenet_folder(tmp_path / "in", wnids)
    truth = data.read_imagenet_ground_truth(tmp_path / "in" / "LOC_val_solution.csv")
    assert truth["ILSVRC2012_val_00000001"] == wnids[0] and len(truth) == 6
    devkit = tmp_path / "gt.txt"
    devkit.write_text("2\n1\n")
    synsets = tmp_path / "synsets.txt"
    synsets.write_text("n01440764\nn01443537\n")
    assert data.read_imagenet_ground_truth(devkit, synsets) == {"ILSVRC2012_val_00000001": "n01443537",
                                                                "ILSVRC2012_val_00000002": "n01440764"}
    with pytest.raises(data.DatasetError, match="synset list"):
        data.read_imagenet_ground_truth(devkit)


@pytest.mark.slow
def test_paper_imagenet_config_runs_end_to_end_on_a_small_folder(tmp_path):
    """config/paper_imagenet_resnet18.yaml, shrunk: real JPEGs (one greyscale, one name with an apostrophe),
    flat val sorted, 256->224-style crops, the paper's ternary/8-bit twin and logit-margin gate, DAG to the
    tables (the FPGA half of these precisions is tested in tests/test_hardware_finn.py)."""
    wnids = ["n01440764", "n01443537", "n01484850", "n01491361"]
    _imagenet_folder(tmp_path / "in", wnids, per_class=12, val_per_class=4)
    cfg = yaml.safe_load((ROOT / "config" / "paper_imagenet_resnet18.yaml").read_text())
    cfg["run_name"] = "imagenet_small"
    cfg["results_dir"] = str(tmp_path / "results")
    cfg["dataset"].update(root=str(tmp_path / "in"), imagenet_val_ground_truth=str(tmp_path / "in" / "LOC_val_solution.csv"),
                             resize_short=40, image_size=40, input_size=32, val_fraction=0.2, class_subset=4)
    cfg["original"]["model_kwargs"] = {"channels": [8, 8, 8, 8]}
    for section in ("original", "twin"):
        cfg[section]["training"].update(epochs=1, batch_size=8)
    assert cfg["twins"]["t2a8"]["weight_scaling"] == "per_channel" and cfg["cascade"]["gates"][0] == "logit_margin"
    cfg.pop("hardware")  # the FPGA half has its own tests
    cfg["compute"].update(num_workers=0, gpus=0, data_workers=1)
    cfg["throughput"].update(batch_size=8, repeats=1, warmup=0, forwarded_fractions=[0.0, 1.0])
    path = tmp_path / "imagenet_small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", str(path), "--cores", "2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    run = tmp_path / "results" / "imagenet_small"
    meta = yaml.safe_load((run / "data" / "meta.json").read_text())
    assert meta["classes"] == wnids and meta["test_count"] == 16 and meta["image_size"] == 40
    assert meta["train_count"] + meta["val_count"] == 4 * 12 + 2  # the greyscale and the apostrophe JPEG too
    with np.load(run / "logits" / "twin_t2a8.npz") as z:
        assert z["test_logits"].shape == (16, 4)
    assert (run / "tables" / "summary.csv").exists()


def test_training_benchmark_reports_ratio(cache):
    table = benchmark_training(CONFIG, cache, steps=2, warmup=1, device="cpu", rounds=2)
    # the twin on Brevitas's own quantizers and fused, the original once
    assert list(zip(table["network"], table["fused_quant"])) == [
        ("original", False), ("twin_w1a2", False), ("twin_w1a2", True)]
    assert (table["rounds"] == 2).all()
    assert (table["pipeline_images_per_s"] > 0).all() and (table["synthetic_images_per_s"] > 0).all()
    assert (table["synthetic_min"] <= table["synthetic_images_per_s"]).all()
    assert (table["synthetic_images_per_s"] <= table["synthetic_max"]).all()
    assert np.allclose(table["pipeline_to_synthetic_ratio"],
                       table["pipeline_images_per_s"] / table["synthetic_images_per_s"])
    assert np.allclose(table["synthetic_vs_original"],
                       table["synthetic_images_per_s"] / table["synthetic_images_per_s"].iloc[0])


def test_training_benchmark_covers_every_twin_and_profiles(cache):
    config = dict(CONFIG, twins={"w1a2": {"weight_bits": 1, "act_bits": 2}, "w1a1": {"weight_bits": 1, "act_bits": 1}})
    table = benchmark_training(config, cache, steps=1, warmup=1, device="cpu", profile=True)
    assert list(table["network"]) == ["original", "twin_w1a2", "twin_w1a2", "twin_w1a1", "twin_w1a1"]
    assert all("convolution" in ops for ops in table["cpu_time_by_op"])
    # the measured parts fit in the step, with time left outside every operator; only fused twins
    # run fused kernels
    measured = table.filter(like="ms_").drop(columns="ms_Python_and_dispatch").fillna(0).sum(axis=1)
    assert (measured < table["step_ms"]).all() and (table["ms_Python_and_dispatch"] > 0).all()
    fused = table["fused_quant"]
    assert (table.loc[fused, "ms_fused_quantizer_kernels"] > 0).all()
    assert (table.loc[~fused, "ms_fused_quantizer_kernels"].fillna(0) == 0).all()
