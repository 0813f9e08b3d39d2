"""Tables and figures from small synthetic frames, and the two rule scripts run with a stand-in ``snakemake``."""

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from twindnn import cascade, report
from twindnn.config import CascadeStage, ReportStage
from twindnn.snakemake_io import redirect_logs
from twindnn.table_io import write_table

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "CPU Test 9000, 2 logical cores, 2 torch threads"
PROV = {
    "git_revision": "abc123-dirty",
    "run_name": "tiny",
    "config_sha256": "f" * 64,
    "dataset": "fashion_mnist",
    "data_source": "idx files in /data",
    "device": DEVICE,
    "hostname": "host",
    "python": "3.11",
    "versions": {"torch": "2.12"},
    "timestamp_utc": "2026-01-01T00:00:00Z",
}


def _throughput(twin_fps=1000.0):
    rows = [
        ("original", np.nan, 200.0),
        ("twin", np.nan, twin_fps),
        ("cascade", 0.0, 1000.0),
        ("cascade", 0.5, 400.0),
    ]
    frame = pd.DataFrame(rows, columns=["model", "forwarded_fraction", "throughput_fps"])
    return frame.assign(device=DEVICE, note=f"measured on this machine ({DEVICE}), not FPGA")


def _points(twin, fractions):
    frame = pd.DataFrame(
        {
            "twin": twin,
            "gate": "max_softmax",
            "target_kind": "accuracy_recovery",
            "target_value": [0.5, 0.9][: len(fractions)],
            "selection": "point",
            "target_reached_val": True,
            "target_met_test": True,
            "test_recovery_meaningful": True,
            "threshold": 0.8,
            "val_forwarded_fraction": fractions,
            "val_system_accuracy": 0.9,
            "val_accuracy_recovery": 0.9,
            "test_forwarded_fraction": fractions,
            "test_system_accuracy": [0.85, 0.9][: len(fractions)],
            "test_accuracy_recovery": [0.5, 1.0][: len(fractions)],
            "test_twin_accuracy": 0.8,
            "test_original_accuracy": 0.9,
            "test_accuracy_loss": 0.0,
        }
    )
    for column in cascade.OPERATING_POINT_COLUMNS:  # intervals: the value itself (their width is tested elsewhere)
        if column.endswith(("_ci95_low", "_ci95_high")) and column.rsplit("_ci95", 1)[0] in frame:
            frame[column] = frame[column.rsplit("_ci95", 1)[0]]
    return frame


def test_summary_table_interpolates_measured_cascade_speed():
    points = pd.concat([_points("w1a1", [0.25, 0.8]), _points("w2a2", [0.5])], ignore_index=True)
    speeds = pd.concat([_throughput().assign(twin="w1a1"), _throughput(500.0).assign(twin="w2a2")])
    summary = report.summary_table(points, speeds)
    assert list(summary.columns) == report.SUMMARY_COLUMNS
    first, beyond, other = summary.to_dict("records")
    # f = 0.25 lies halfway between the measured 1000 fps (f = 0) and 400 fps (f = 0.5).
    assert first["twindnn_throughput_fps"] == pytest.approx(700.0)
    assert first["twindnn_speedup_vs_original_x"] == pytest.approx(3.5)
    assert first["twindnn_ideal_throughput_fps"] == pytest.approx(1 / (1 / 1000 + 0.25 / 200))
    assert (first["original_throughput_fps"], first["twin_throughput_fps"]) == (200.0, 1000.0)
    assert (first["twindnn_test_accuracy"], first["test_accuracy_recovery"]) == (0.85, 0.5)
    # Beyond the largest measured fraction: the nearest measurement.
    assert beyond["twindnn_throughput_fps"] == pytest.approx(400.0)
    assert other["twin_throughput_fps"] == 500.0
    assert other["twindnn_ideal_throughput_fps"] == pytest.approx(1 / (1 / 500 + 0.5 / 200))
    assert set(summary["throughput_device"]) == {DEVICE}
    # The schedulers on two devices at the measured rates (twin 1000 fps, original 200 fps).
    assert first["twin_first_model_fps"] == pytest.approx(min(1000, 200 / 0.25))
    # f r_t = 250 > r_o = 200: the original is saturated by forwarded inputs, no fresh ones.
    assert first["work_sharing_model_fps"] == pytest.approx(200 / 0.25)
    assert first["work_sharing_test_accuracy"] == pytest.approx(0.85)
    # Twin 500 fps, f = 0.5: f r_t = 250 > 200 again; at a twin of 300 fps the original takes
    # 200 - 150 = 50 fresh inputs of 300 * 0.5 + 200 = 350 answered per second.
    slow = report.summary_table(_points("w1a1", [0.5]), _throughput(300.0).assign(twin="w1a1")).iloc[0]
    assert slow["work_sharing_model_fps"] == pytest.approx(350.0)
    assert slow["work_sharing_test_accuracy"] == pytest.approx((300 / 350) * 0.85 + (50 / 350) * 0.9)
    assert slow["twin_first_model_fps"] == pytest.approx(300.0)


def test_summary_table_without_measurements_gives_nan_speeds():
    speeds = _throughput().assign(twin="other")
    summary = report.summary_table(_points("w1a1", [0.25]), speeds)
    assert np.isnan(summary["twindnn_throughput_fps"].iloc[0])
    assert summary["throughput_device"].iloc[0] == "not measured"


def test_write_table_files(tmp_path):
    summary = report.summary_table(_points("w1a1", [0.25, 0.8]), _throughput().assign(twin="w1a1"))
    paths = [tmp_path / "t" / name for name in ("summary.csv", "summary.md", "summary.tex")]
    write_table(summary, *paths, provenance=PROV, title="TwinDNN operating points, tiny")

    back = pd.read_csv(paths[0])
    pd.testing.assert_frame_equal(back, summary, check_dtype=False)

    markdown = paths[1].read_text()
    assert markdown.startswith("## TwinDNN operating points, tiny")
    header = next(line for line in markdown.splitlines() if line.startswith("| twin"))
    for column in report.SUMMARY_COLUMNS[:-1]:
        assert f" {column} " in header
    assert "throughput_device" not in header  # moved into the note below the table
    assert f"Throughput measured on {DEVICE} (this machine), not on an FPGA." in markdown
    assert "Provenance: run `tiny`, git `abc123-dirty`" in markdown
    assert "| w1a1 | max_softmax |" in markdown and "| 700.0 |" in markdown

    latex = paths[2].read_text()
    assert "\\begin{tabular}" in latex and "original\\_test\\_accuracy" in latex
    assert "not on an FPGA" in latex and "abc123-dirty" in latex
    assert latex.rstrip().endswith("\\end{table}")


def _png(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:4] == b"\x89PNG"


def _logits(seed, n=60, classes=4, skill=1.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return (rng.normal(size=(n, classes)) + skill * np.eye(classes)[labels]).astype(np.float32), labels


def _logit_files(seed):
    (tv, val_labels), (tt, test_labels) = _logits(seed), _logits(seed + 1)
    ov, ot = _logits(seed, skill=4.0)[0], _logits(seed + 1, skill=4.0)[0]
    twin = {"val_logits": tv, "val_labels": val_labels, "test_logits": tt, "test_labels": test_labels}
    original = {"val_logits": ov, "val_labels": val_labels, "test_logits": ot, "test_labels": test_labels}
    return twin, original


def test_figures(tmp_path):
    sweeps, points, files = [], [], {}
    for seed, twin_name in enumerate(["w1a1", "w2a2"]):
        twin, original = _logit_files(10 * seed)
        sweep, chosen = cascade.run_cascade(twin, original, cascade.GATES, [0.5, 0.9])
        sweeps.append(sweep.assign(twin=twin_name))
        points.append(chosen.assign(twin=twin_name))
        files[twin_name] = twin
    speeds = pd.concat([_throughput().assign(twin="w1a1"), _throughput(600.0).assign(twin="w2a2")])
    summary = report.summary_table(pd.concat(points), speeds)

    report.plot_accuracy_vs_forwarded(pd.concat(sweeps), tmp_path / "f" / "acc_fwd.png", title="tiny: sweeps")
    report.plot_confidence_histograms(files, tmp_path / "f" / "conf.png", title="tiny: twin logits")
    report.plot_accuracy_vs_throughput(summary, tmp_path / "f" / "acc_fps.png", title="tiny: measured")
    for name in ("acc_fwd.png", "conf.png", "acc_fps.png"):
        _png(tmp_path / "f" / name)


def _namespace(**items):
    from snakemake.iocontainers import Namedlist

    return Namedlist(fromdict=items)


def _job(stage, **parts):
    """What a rule script sees as ``snakemake``: named input/output, params.stage, threads, log."""
    return SimpleNamespace(params=SimpleNamespace(stage=stage.to_params()), threads=1, **parts)


def test_rule_scripts_end_to_end(tmp_path):
    twins = ["w1a1", "w2a2"]
    for seed, name in enumerate(twins):
        twin, original = _logit_files(10 * seed)
        np.savez(tmp_path / f"twin_{name}.npz", **twin)
        np.savez(tmp_path / f"original_{name}.npz", **original)
        cascade_job = _job(
            CascadeStage(gates=["max_softmax", "margin"], targets={"accuracy_recovery": [0.5, 0.9]}, delta=0.1),
            input=_namespace(
                twin_logits=str(tmp_path / f"twin_{name}.npz"), original_logits=str(tmp_path / f"original_{name}.npz")
            ),
            output=_namespace(
                sweep=str(tmp_path / "cascade" / f"{name}_sweep.csv"),
                operating_points=str(tmp_path / "cascade" / f"{name}_operating_points.csv"),
            ),
            log=[str(tmp_path / "logs" / f"cascade_{name}.log")],
        )
        runpy.run_path(str(ROOT / "scripts" / "cascade.py"), init_globals={"snakemake": cascade_job})
        (tmp_path / "throughput").mkdir(exist_ok=True)
        _throughput().to_csv(tmp_path / "throughput" / f"{name}.csv", index=False)

    points = pd.read_csv(tmp_path / "cascade" / "w1a1_operating_points.csv")
    # 2 gates x 2 targets x 2 selection rules (point, guaranteed)
    assert list(points.columns) == cascade.OPERATING_POINT_COLUMNS and len(points) == 8
    assert "operating points" in (tmp_path / "logs" / "cascade_w1a1.log").read_text()

    (tmp_path / "meta.json").write_text(json.dumps({"dataset": "fashion_mnist", "source": "idx files in /data"}))
    out = {
        "summary_csv": "tables/summary.csv",
        "summary_md": "tables/summary.md",
        "summary_tex": "tables/summary.tex",
        "fig_accuracy_forwarded": "figures/a.png",
        "fig_confidence": "figures/c.png",
        "fig_accuracy_throughput": "figures/t.png",
    }
    report_job = _job(
        ReportStage(run_name="tiny", dataset="fashion_mnist", twins={t: {} for t in twins}, gate="max_softmax",
                    config_sha256="0" * 64),
        input=_namespace(
            operating_points=[str(tmp_path / "cascade" / f"{t}_operating_points.csv") for t in twins],
            sweeps=[str(tmp_path / "cascade" / f"{t}_sweep.csv") for t in twins],
            throughput=[str(tmp_path / "throughput" / f"{t}.csv") for t in twins],
            twin_logits=[str(tmp_path / f"twin_{t}.npz") for t in twins],
            data_meta=str(tmp_path / "meta.json"),
        ),
        output=_namespace(**{k: str(tmp_path / v) for k, v in out.items()}),
        log=[str(tmp_path / "logs" / "report.log")],
    )
    runpy.run_path(str(ROOT / "scripts" / "report.py"), init_globals={"snakemake": report_job})
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv")
    assert len(summary) == 16 and summary["twin"].tolist()[:8] == ["w1a1"] * 8
    assert "idx files in /data" in (tmp_path / "tables" / "summary.md").read_text()
    for key in ("fig_accuracy_forwarded", "fig_confidence", "fig_accuracy_throughput"):
        _png(tmp_path / out[key])


def test_redirect_logs_captures_output_and_errors(tmp_path, capsys):
    log = tmp_path / "logs" / "job.log"
    with redirect_logs(log):
        print("hello from the job")
    with pytest.raises(RuntimeError), redirect_logs(log):
        raise RuntimeError("boom")
    print("back on the console")
    text = log.read_text()
    assert "hello from the job" in text and "RuntimeError: boom" in text and "Traceback" in text
    assert "back on the console" not in text
    assert "back on the console" in capsys.readouterr().out


def test_redirect_logs_yields_the_console_for_progress_lines(tmp_path, capfd):
    log = tmp_path / "job.log"
    with redirect_logs(log) as console:
        print("into the log")
        print("epoch 1/2 on the console", file=console)
    err = capfd.readouterr().err
    assert "epoch 1/2 on the console" in err and "into the log" not in err
    assert "into the log" in log.read_text() and "on the console" not in log.read_text()


def test_anchor_table_sets_run_beside_published_figures():
    import yaml

    from twindnn.report import anchor_table

    anchors = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow" / "anchors.yaml").read_text())
    summary = pd.DataFrame({
        "twin": ["w1a1", "w1a1"], "gate": ["max_softmax"] * 2, "target_kind": ["accuracy_recovery"] * 2,
        "target_value": [0.5, 0.94], "test_accuracy_recovery": [0.55, 0.96], "test_forwarded_fraction": [0.1, 0.3],
        "selection": ["point"] * 2, "test_accuracy_recovery_ci95_low": [0.4, 0.9],
        "test_accuracy_recovery_ci95_high": [0.7, 1.0], "target_met_test": [True, True],
        "test_recovery_meaningful": [True, True],
        "twin_test_accuracy": [0.80, 0.80], "original_test_accuracy": [0.90, 0.90],
    })
    headline = pd.DataFrame({"board": ["ZCU104"] * 2, "twin": ["w1a1"] * 2, "gate": ["max_softmax"] * 2,
                             "target_value": [0.94] * 2, "scheduler": ["work_sharing", "twin_first"],
                             "fits": [True] * 2, "gain_vs_original_in_pair": [2.5, 1.1],
                             "gain_vs_original_alone": [1.2, 0.6], "source": ["FINN+ estimate"] * 2,
                             "forwarded_fraction": [0.3] * 2})
    table = anchor_table(summary, anchors, {"w1a1": (1, 1)}, "cifar10", headline)
    by = dict(zip(table["comparison"].str.split(",").str[0].str.split(" vs ").str[0], table["this_run"]))
    recovery = table[table["comparison"].str.startswith("accuracy recovery")].iloc[0]
    assert recovery["anchor"] == 0.94 and recovery["this_run"] == 0.96  # the 0.94 target row, not 0.5
    cnv = table[table["comparison"].str.contains("CNV W1A1")].iloc[0]
    assert cnv["anchor"] == 0.8422 and cnv["this_run"] == 0.80
    gain = table[table["comparison"].str.startswith("throughput gain over the same original")].iloc[0]
    assert gain["anchor"] == 1.9 and gain["this_run"] == 2.5 and "estimate" in gain["note"]
    best = table[table["comparison"].str.startswith("throughput gain over the strongest whole-device original")].iloc[0]
    assert best["this_run"] == 1.2
    assert "twin w1a1 test accuracy" in by
    # another dataset: no CIFAR-10 accuracy anchors
    assert not anchor_table(summary, anchors, {"w1a1": (1, 1)}, "fashion_mnist")["comparison"].str.contains("CNV").any()
