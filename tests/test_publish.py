"""Publishing a finished run: PROVENANCE.md from the run's own records, and what git keeps of it."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from twindnn import publish

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def finished_run(tmp_path):
    run = tmp_path / "results" / "myrun"
    for sub in ("tables", "figures", "logs", "benchmarks", "data", "models"):
        (run / sub).mkdir(parents=True)
    (run / "data" / "meta.json").write_text(json.dumps(
        {"dataset": "cifar10", "source": "image folders in data/cifar10-jpeg", "train_count": 20,
         "val_count": 5, "test_count": 10}))
    (run / "tables" / "summary.csv").write_text("twin,throughput_device\nw1a1,cpu: Test CPU (2 threads)\n")
    (run / "tables" / "summary.md").write_text("table\n\nProvenance: run `myrun`, git `abc1234`, config.\n")
    (run / "tables" / "hw_headline.md").write_text("Provenance: run `myrun`, git `def5678-dirty`, x.\n")
    (run / "figures" / "a.png").write_bytes(b"png")
    (run / "models" / "original.pt").write_bytes(b"big")
    (run / "models" / "original_metrics.csv").write_text("epoch\n1\n")
    (run / "benchmarks" / "train_original.tsv").write_text("s\th:m:s\tmax_rss\n600.0\t0:10:00\t1500.5\n")
    (run / "benchmarks" / "prepare_data.tsv").write_text("s\th:m:s\tmax_rss\n30.0\t0:00:30\t900.0\n")
    now = 1_000_000.0
    for log, written in (("prepare_data", now + 30), ("train_original", now + 630)):
        (run / "logs" / f"{log}.log").write_text("x")
        os.utime(run / "logs" / f"{log}.log", (written, written))
    for p in [*(run / "tables").iterdir(), *(run / "figures").iterdir()]:
        os.utime(p, (now + 700, now + 700))
    config = tmp_path / "my.yaml"
    config.write_text("run_name: myrun\n")
    return run, config


def test_provenance_names_config_revisions_data_device_and_times(finished_run):
    run, config = finished_run
    files = publish.publish_run(run, config, data_note="CIFAR-10 (JPEG copy)", note="Ran in one go.")
    text = (run / "PROVENANCE.md").read_text()
    assert "\nRan in one go.\n" in text
    assert "`abc1234`" in text and "`def5678-dirty`" in text
    assert "CIFAR-10 (JPEG copy): image folders in data/cifar10-jpeg" in text
    assert "cpu: Test CPU (2 threads)" in text
    # first job started at 0 (prepare_data: log at 30 s less its 30 s), last table at 700 s
    assert "| wall time, first job to last table | 11.7 min |" in text
    assert "| compute time, sum of benchmarked jobs | 10.5 min |" in text
    assert text.index("train_original") < text.index("prepare_data |")  # longest job first
    names = {p.relative_to(run).as_posix() for p in files}
    assert "models/original_metrics.csv" in names and "PROVENANCE.md" in names
    assert "models/original.pt" not in names and "data/meta.json" not in names


def test_unfinished_run_is_refused_with_the_fix(finished_run):
    run, config = finished_run
    (run / "tables" / "summary.csv").unlink()
    with pytest.raises(publish.PublishError, match="summary.csv is missing: run the workflow"):
        publish.publish_run(run, config)


def test_gitignore_keeps_exactly_the_published_files():
    """The committed runs' small outputs pass .gitignore; checkpoints, caches and other runs do not."""
    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0

    for kept in ("results/cifar10_cpu/tables/summary.csv", "results/cifar10_cpu/figures/x.png",
                 "results/cifar10_cpu/models/original_metrics.csv", "results/cifar10_cpu/PROVENANCE.md",
                 "results/cifar10_cpu/benchmarks/train_original.tsv"):
        assert not ignored(kept), kept
    for dropped in ("results/cifar10_cpu/models/original.pt", "results/cifar10_cpu/data/train_images.npy",
                    "results/cifar10_cpu/hardware/onnx/original_q.onnx", "results/tiny/tables/summary.csv",
                    "results/cifar10_cpu/logs/train_original.log"):
        assert ignored(dropped), dropped
