"""Provenance records: git state, config hash, footer."""

import hashlib
import json
import subprocess

from twindnn import provenance


def _git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True, capture_output=True
    )


def test_git_revision_clean_dirty_and_outside(tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    assert provenance.git_revision(outside) == "unknown"

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert provenance.git_revision(repo) == head
    (repo / "untracked.txt").write_text("not part of the tree\n")
    assert provenance.git_revision(repo) == head
    (repo / "results").mkdir()
    (repo / "results" / "table.csv").write_text("a\n")
    _git(repo, "add", "results/table.csv")
    _git(repo, "commit", "-q", "-m", "a committed run")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "results" / "table.csv").write_text("b\n")  # a re-run rewrites its committed outputs
    assert provenance.git_revision(repo) == head
    (repo / "a.txt").write_text("two\n")
    assert provenance.git_revision(repo) == head + "-dirty"


def test_config_hash_ignores_key_order_but_not_values():
    a = {"run_name": "x", "cascade": {"targets": [0.5, 0.9], "gates": ["max_softmax"]}}
    b = {"cascade": {"gates": ["max_softmax"], "targets": [0.5, 0.9]}, "run_name": "x"}
    assert provenance.config_sha256(a) == provenance.config_sha256(b)
    expected = hashlib.sha256(json.dumps(a, sort_keys=True).encode()).hexdigest()
    assert provenance.config_sha256(a) == expected
    assert provenance.config_sha256({**a, "run_name": "y"}) != expected


def test_collect_and_footer(tmp_path):
    config = {"run_name": "cifar_small", "dataset": {"name": "cifar10"}}
    meta = {"dataset": "cifar10", "source": "CIFAR-10 pickle batches in /data/cifar"}
    prov = provenance.collect(config, meta, device="CPU Test 9000", repo_dir=tmp_path)
    assert prov["git_revision"] == "unknown"
    assert prov["run_name"] == "cifar_small"
    assert prov["config_sha256"] == provenance.config_sha256(config)
    assert (prov["dataset"], prov["data_source"], prov["device"]) == ("cifar10", meta["source"], "CPU Test 9000")
    assert prov["timestamp_utc"].endswith("Z")
    assert "torch" in prov["versions"]
    json.dumps(prov)  # must be serialisable

    footer = provenance.provenance_footer(prov)
    assert "\n" not in footer
    for part in (
        "cifar_small",
        "unknown",
        prov["config_sha256"][:12],
        meta["source"],
        "CPU Test 9000",
        prov["timestamp_utc"],
    ):
        assert part in footer


def test_collect_defaults_without_data_meta():
    prov = provenance.collect({"run_name": "r", "dataset": {"name": "fashion_mnist"}}, None, device=None)
    assert prov["dataset"] == "fashion_mnist" and prov["data_source"] == "unknown"
    assert prov["device"].startswith("CPU ")
