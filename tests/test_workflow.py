"""The whole DAG for real on the tiny config, its report, lint/format, and config validation."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from twindnn.hardware.boards import RESOURCES
from twindnn.hardware.optimize import recompute_resources
from twindnn.hardware.tables import budget_violations

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, check=True, timeout=900):
    result = subprocess.run([*SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    args = ["--configfile", "config/tiny.yaml", "--config", f"results_dir={results}"]
    result = snakemake(*args, "--cores", "2")
    (results / "console.txt").write_text(result.stdout + result.stderr)  # what the user saw
    return results / "tiny", args


@pytest.mark.slow
def test_tiny_dag_produces_tables_and_figures(tiny_run):
    run, _ = tiny_run
    summary = pd.read_csv(run / "tables" / "summary.csv")
    assert set(summary["twin"]) == {"w1a1", "t2a2"}
    # each twin's row carries its own numbers (config order w1a1, t2a2 is not the sorted order)
    for twin, rows in summary.groupby("twin"):
        points = pd.read_csv(run / "cascade" / f"{twin}_operating_points.csv")
        assert rows["twin_test_accuracy"].tolist() == points["test_twin_accuracy"].tolist()
        speeds = pd.read_csv(run / "throughput" / f"{twin}.csv")
        assert rows["twin_throughput_fps"].iloc[0] == speeds.loc[speeds["model"] == "twin", "throughput_fps"].median()
    for column in ("original_test_accuracy", "twin_test_accuracy", "twindnn_test_accuracy",
                   "test_accuracy_recovery", "test_forwarded_fraction", "twindnn_throughput_fps"):
        assert column in summary.columns
    assert summary["test_forwarded_fraction"].between(0, 1).all()
    # both threshold rules, every number with its interval; the FPGA half builds the configured rule's
    assert set(summary["selection"]) == {"point", "guaranteed"}
    for column in ("twindnn_test_accuracy", "test_accuracy_recovery", "test_forwarded_fraction"):
        assert (summary[f"{column}_ci95_low"] <= summary[column] + 1e-12).all()
        assert (summary[column] <= summary[f"{column}_ci95_high"] + 1e-12).all()
    md = (run / "tables" / "summary.md").read_text()
    assert "not on an FPGA" in md and "git" in md.lower()
    for fig in ("accuracy_vs_forwarded", "confidence_histograms", "accuracy_vs_throughput"):
        assert (run / "figures" / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = pd.read_csv(run / "models" / "original_metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    for log in ("train_original.log", "prepare_data.log"):
        assert (run / "logs" / log).stat().st_size > 0
    assert (run / "benchmarks" / "train_original.tsv").exists()
    # The FPGA half: FINN+ estimates for twin, co-located original and the original alone, labelled.
    resources = pd.read_csv(run / "tables" / "hw_resources.csv")
    assert {"twin", "original", "original_alone"} <= set(resources["network"])
    assert (resources["source"] == "FINN+ estimate").all()
    assert (resources.loc[resources["network"] == "original_alone", "DSP"] > 0).all()
    headline = pd.read_csv(run / "tables" / "hw_headline.csv")
    assert set(headline.loc[headline["gate"] != "oracle", "selection"]) == {"guaranteed"}  # tiny.yaml's rule
    fitting = headline[headline["fits"]]
    assert (fitting["twindnn_fps_ci95_low"] <= fitting["twindnn_fps"] + 1e-6).all()
    assert (headline["source"].str.contains("estimate")).all() and headline["fits"].all()
    assert set(headline["scheduler"]) == {"work_sharing", "twin_first"}
    for baseline in ("original_alone", "original_dsp_alone", "original_in_pair", "time_shared_bound", "twin_alone"):
        assert headline[f"{baseline}_fps"].gt(0).all() and f"gain_vs_{baseline}" in headline
    # (c) at TwinDNN's latency: a throughput where a batch meets it, else none, and the row says why
    met = headline["time_shared_meets_latency"].astype(bool)
    assert headline.loc[met, "time_shared_fps"].gt(0).all() and headline.loc[~met, "time_shared_fps"].isna().all()
    assert headline["time_shared_limit"].str.contains("budget").all()
    # the strongest original-only system is at least the DSP-only one, and below the resource bound
    assert (headline["original_alone_fps"] >= headline["original_dsp_alone_fps"] - 1e-6).all()
    assert (headline["original_alone_fps"] <= headline["original_bound_fps"]).all()
    assert headline["original_alone_limit"].str.contains("budget full|binds|balance").all()
    assert (headline.loc[met, "time_shared_fps"] <= headline.loc[met, "time_shared_bound_fps"] + 1e-6).all()
    # every row's resources, recomputed from its design counts and the searched designs' own figures
    # with the stated overheads, are its totals and fit the board
    over = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    over = {k: v["default"] for k, v in over["properties"]["hardware"]["properties"]["overheads"]["properties"].items()}
    searched = {n: pd.read_csv(run / "hardware" / "search" / f"ZCU104__{n}_designs.csv")
                for n in ("original_q", "twin_w1a1")}
    for _, row in headline.iterrows():
        parts = [recompute_resources({int(d): n for d, n in json.loads(row[f"{role}_counts"]).items()},
                                     searched[net], {"LUT": over["instance_lut"]})
                 for role, net in (("twin", "twin_w1a1"), ("original", "original_q"))]
        dispatcher = {"LUT": over["dispatcher_lut"], "BRAM_18K": over["dispatcher_bram_18k"]}
        for r in RESOURCES:
            total = parts[0][r] + parts[1][r] + dispatcher.get(r, 0.0)
            assert total == pytest.approx(row[f"total_{r}"]), (r, total, row[f"total_{r}"])
    assert not budget_violations(headline)
    # the replay of the test split through both accelerators, beside the closed forms
    assert headline["simulated_inputs"].eq(20_224).all()  # the 256 test images, replayed 79 times
    # the replay is a finite stream that ends one pipeline latency after its last input starts: that
    # term matters where a forward-everything point (the guaranteed rule on 256 val images) puts the
    # twin's slowest design, 30 ms deep, beside the original
    system = pd.concat([pd.read_csv(p) for p in (run / "hardware" / "colocate").glob("*_system.csv")])
    system = system[system["fits"].astype(bool)]
    drain_s = (system["twin_latency_ms"] + system["original_latency_ms"]) / 1e3
    closed_form = system["simulated_inputs"] / (system["simulated_inputs"] / system["twindnn_fps"] + drain_s)
    assert ((system["simulated_throughput_fps"] - closed_form).abs() / closed_form).max() < 0.05
    assert resources["fits_budget"].all()
    # the twin's MACs on LUTs (twin_macs: [lut]); the original's on DSP-based RTL units (auto), whose LUTs
    # FINN+ does not count, or on LUTs
    assert set(resources.loc[resources["network"] == "twin", "mac"]) == {"lut"}
    for _, row in resources[resources["network"].isin(["twin", "original", "original_alone"])].iterrows():
        if row["mac"] == "lut":
            assert row["DSP"] == 0 and "MVAU_rtl" not in row["zero_estimated"]
        else:
            assert row["DSP"] > 0 and "MVAU_rtl" in row["zero_estimated"]


@pytest.mark.slow
def test_the_answer_ends_the_console_output_and_matches_the_headline(tiny_run):
    run, _ = tiny_run
    console = (run.parent / "console.txt").read_text()
    answer_at = console.rindex("TwinDNN's answer, run tiny")
    assert answer_at > console.rindex("hw_tables")  # the last job's lines come last
    answer = pd.read_csv(run / "tables" / "answer.csv")
    headline = pd.read_csv(run / "tables" / "hw_headline.csv")
    config = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    point = config["hardware"]["design_point"]
    assert len(answer) == len(headline.groupby(["board", "twin"]))
    for _, row in answer.iterrows():
        match = headline[(headline["board"] == row["board"]) & (headline["twin"] == row["twin"])
                         & (headline["gate"] == row["gate"]) & (headline["target_value"] == row["target_value"])
                         & (headline["scheduler"] == row["scheduler"]) & (headline["selection"] == "guaranteed")]
        assert row["gate"] == point["gate"] and len(match) == 1
        assert row["twindnn_fps"] == pytest.approx(match["twindnn_fps"].iloc[0])
        assert row["twindnn_accuracy"] == pytest.approx(match["twindnn_accuracy"].iloc[0])
        assert f"{row['twindnn_fps']:,.0f}" in console[answer_at:]
    # every table of the run is a page of the report
    for name in ("summary", "anchors", "paper_table", "hw_headline", "hw_fps", "hw_resources"):
        assert "<table" in (run / "report_pages" / f"{name}.html").read_text()


@pytest.mark.slow
def test_rerun_is_up_to_date_and_report_renders(tiny_run, tmp_path):
    run, args = tiny_run
    dry = snakemake(*args, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    report = tmp_path / "report.html"
    snakemake(*args, "--report", str(report))
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 10_000 and "summary" in html
    # the report opens on the answer: its table is in the page itself, not only a download
    assert "TwinDNN" in html and "answer, run tiny" in html.replace("&#x27;", "'").replace("\\u0027", "'")


def scheduled(result) -> dict[str, int]:
    """Rule -> job count from a dry run's "Job stats" table."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def edited_config(tmp_path, run, edit, name="edited.yaml") -> Path:
    config = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    config["results_dir"] = str(run.parent)
    edit(config)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slow
def test_new_board_and_gate_schedule_no_training_quantization_export_or_prepare(tiny_run, tmp_path):
    run, _ = tiny_run

    def add_board(c):
        c["hardware"]["boards"].append("U250")
        c["compute"]["mem_mb"] = 4000  # a scheduler's request: changes no result
    jobs = scheduled(snakemake("-n", "--configfile", str(edited_config(tmp_path, run, add_board))))
    assert jobs.keys() <= {"hw_search", "hw_colocate", "hw_build", "hw_build_pair", "hw_tables", "compare_anchors",
                           "report_tables", "report_pages", "answer", "all"}, jobs
    # the new board's jobs only: a search per network, one pair search, three builds
    assert jobs["hw_search"] == 2 and jobs["hw_colocate"] == 1 and jobs["hw_build"] == 3

    def add_board_and_gate(c):
        add_board(c)
        c["cascade"]["gates"].append("entropy")
    jobs = scheduled(snakemake("-n", "--configfile", str(edited_config(tmp_path, run, add_board_and_gate, "g.yaml"))))
    # the new gate's sweeps, and what reads them: the co-location search picks among operating points
    assert jobs["cascade"] == 2 and "hw_colocate" in jobs, jobs
    never = {"prepare_data", "train_original", "train_twin", "hw_quantize_original", "hw_export", "hw_prepare",
             "logits_original", "logits_twin", "throughput"}
    assert not never & jobs.keys(), jobs


@pytest.mark.slow
def test_scheduler_requests_and_new_boards_rerun_nothing_of_the_software_report(tiny_run, tmp_path):
    """The software report's params are what it reads: a scheduler's request re-runs nothing, a new
    board re-runs only the FPGA half and what reads its tables (the anchors)."""
    run, _ = tiny_run
    assert scheduled(snakemake("-n", "--configfile", str(edited_config(
        tmp_path, run, lambda c: c["compute"].update(mem_mb=4000, train_runtime_min=30), "mem.yaml")))) == {}
    jobs = scheduled(snakemake("-n", "--configfile", str(edited_config(
        tmp_path, run, lambda c: c["hardware"]["boards"].append("U250"), "board.yaml"))))
    assert "report_tables" not in jobs and "compare_anchors" in jobs, jobs


@pytest.mark.slow
def test_same_config_with_keys_reordered_schedules_nothing(tiny_run, tmp_path):
    run, _ = tiny_run

    def reverse(node):
        return {k: reverse(node[k]) for k in reversed(list(node))} if isinstance(node, dict) else node
    path = edited_config(tmp_path, run, lambda c: None)
    path.write_text(yaml.safe_dump(reverse(yaml.safe_load(path.read_text())), sort_keys=False))
    assert scheduled(snakemake("-n", "--configfile", str(path))) == {}


@pytest.mark.slow
def test_two_runs_with_one_seed_give_identical_logits(tiny_run, tmp_path):
    run, _ = tiny_run
    again = tmp_path / "again"
    # the original and the default's kind of twin (W1A1, fused binary kernels); not the T2A2 twin here
    names = ("original.npz", "twin_w1a1.npz")
    targets = [str(again / "tiny" / "logits" / f) for f in names]
    snakemake("--configfile", "config/tiny.yaml", "--config", f"results_dir={again}", "--cores", "2", *targets)
    for name in names:
        with np.load(run / "logits" / name) as a, np.load(again / "tiny" / "logits" / name) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")


@pytest.mark.slow
def test_changed_learning_rate_retrains_the_original_and_then_the_twins(tiny_run, tmp_path):
    """Last of the tiny_run tests: it re-runs part of the run under another config."""
    run, _ = tiny_run
    before = {n: torch.load(run / "models" / f"{n}.pt", weights_only=False)
              for n in ("original", "twin_w1a1", "twin_t2a2")}
    path = edited_config(tmp_path, run, lambda c: c["original"]["training"].update(lr=0.05))
    jobs = scheduled(snakemake("-n", "--configfile", str(path)))
    assert jobs["train_original"] == 1 and jobs["train_twin"] == 2
    snakemake("--configfile", str(path), "--cores", "2", *(str(run / "models" / f"{n}.pt") for n in before))
    after = {n: torch.load(run / "models" / f"{n}.pt", weights_only=False) for n in before}
    for name in before:
        old, new = before[name]["state_dict"], after[name]["state_dict"]
        assert any(not torch.equal(old[k], new[k]) for k in old), f"{name} kept its old weights"
        assert before[name]["fingerprint"] != after[name]["fingerprint"]
    for twin in ("w1a1", "t2a2"):
        log = (run / "logs" / f"train_twin_{twin}.log").read_text()
        assert "not resuming" in log, f"twin {twin} resumed from the old original"


def test_lint_clean():
    result = snakemake("--lint", check=False, timeout=120)
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr, result.stdout


def test_snakefmt_clean():
    files = ["Snakefile", *map(str, sorted((ROOT / "workflow" / "rules").glob("*.smk")))]
    result = subprocess.run([str(Path(sys.executable).parent / "snakefmt"), "--check", *files], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_clean():
    """The Python linter, with the project's settings in pyproject.toml."""
    result = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_stage_per_rule_file():
    """Each rule file holds one stage: a few rules, under 150 lines; common.smk holds no rule (only
    the helpers, under 200 lines)."""
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        rules = re.findall(r"^rule (\w+):", text, re.M)
        limit = 200 if smk.name == "common.smk" else 150
        assert len(text.splitlines()) < limit, f"{smk.name}: {len(text.splitlines())} lines"
        if smk.name == "common.smk":
            assert not rules, f"common.smk defines rules {rules}"
        else:
            assert 1 <= len(rules) <= 3, f"{smk.name}: {rules}"


def test_rule_paths_resolve():
    """script:/conda:/caption paths are relative to the .smk file that names them."""
    pattern = re.compile(r'(?:script:|conda:|caption=)\s*\n?\s*"([^"]+)"')
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for rel in pattern.findall(smk.read_text()):
            assert (smk.parent / rel).resolve().exists(), f"{smk.name}: {rel} does not exist"


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["dataset"].update(bogus_key=1), "'bogus_key' was unexpected"),
    (lambda c: c["original"]["training"].update(optimizer="adam"), "'adam' is not one of"),
    (lambda c: c["twin"]["training"].update(epochs="two"), "'two' is not of type 'integer'"),
])
def test_bad_config_is_rejected_before_any_job(tmp_path, edit, message):
    config = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    edit(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("-n", "--configfile", str(path), check=False, timeout=120)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_every_config_validates(tmp_path):
    # A scratch results_dir: a run of the same config in progress in results/ must not matter.
    for config in sorted((ROOT / "config").glob("*.yaml")):
        result = snakemake("-n", "--configfile", str(config), "--config", f"results_dir={tmp_path}",
                           check=False, timeout=120)
        assert result.returncode == 0, f"{config.name}:\n{result.stderr[-2000:]}"
