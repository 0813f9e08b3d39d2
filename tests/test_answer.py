"""The run's answer: the design point's row per board and twin, the strongest baseline, the
reference beside it, the console lines, and every table as an HTML page for the report."""
import io
import re

import numpy as np
import pandas as pd
import pytest

from twindnn import answer
from twindnn.config import AnswerStage
from twindnn.stats import clopper_pearson
from twindnn.steps.software import answer as answer_step
from twindnn.steps.software import report_pages


def headline_rows() -> pd.DataFrame:
    """Two boards, one twin, two gates, two targets, two schedulers; U250's 0.94 point does not fit."""
    rows = []
    for board, base in (("ZCU104", 1000.0), ("U250", 8000.0)):
        for gate in ("max_softmax", "logit_margin"):
            for target in (0.5, 0.94):
                for scheduler in ("work_sharing", "twin_first"):
                    fps = base * (3 if target == 0.5 else 2) * (1.1 if scheduler == "work_sharing" else 1.0)
                    rows.append({
                        "board": board, "twin": "w1a1", "gate": gate, "selection": "point",
                        "target_kind": "accuracy_recovery", "target_value": target, "scheduler": scheduler,
                        "original_accuracy": 0.90, "twin_accuracy": 0.85,
                        "twindnn_accuracy": 0.85 + 0.05 * target, "twindnn_accuracy_ci95_low": 0.84 + 0.05 * target,
                        "twindnn_accuracy_ci95_high": 0.86 + 0.05 * target,
                        "accuracy_recovery": target, "accuracy_recovery_ci95_low": target - 0.1,
                        "accuracy_recovery_ci95_high": target + 0.1,
                        "forwarded_fraction": 0.1 + target / 10, "twindnn_fps": fps,
                        "twindnn_fps_ci95_low": 0.95 * fps, "twindnn_fps_ci95_high": 1.05 * fps,
                        "original_alone_fps": base, "original_dsp_alone_fps": 0.8 * base,
                        # time-sharing is the strongest baseline on U250 only
                        "time_shared_fps": 1.5 * base if board == "U250" else np.nan,
                        "gain_vs_original_alone": fps / base, "gain_vs_original_dsp_alone": fps / (0.8 * base),
                        "gain_vs_time_shared": fps / (1.5 * base) if board == "U250" else np.nan,
                        "gain_vs_original_in_pair": 4.0,
                        "fits": not (board == "U250" and target == 0.94),
                        "pair_limit": "budget full: LUT 99% of the budget", "source": "FINN+ estimate",
                    })
    return pd.DataFrame(rows)


def test_answer_reads_the_design_points_row_and_names_the_strongest_baseline():
    table = answer.fpga_answer(headline_rows(), "logit_margin", 0.94, "work_sharing", "point", test_count=10_000)
    assert list(table["board"]) == ["ZCU104", "U250"]
    zcu = table.iloc[0]
    assert (zcu["gate"], zcu["target_value"], zcu["scheduler"]) == ("logit_margin", 0.94, "work_sharing")
    assert zcu["twindnn_fps"] == pytest.approx(1000 * 2 * 1.1)
    assert zcu["strongest_baseline"].startswith("(a)") and zcu["gain_vs_strongest"] == pytest.approx(2.2)
    assert zcu["gain_vs_strongest_ci95_low"] == pytest.approx(0.95 * 2.2)
    assert (zcu["original_accuracy_ci95_low"], zcu["original_accuracy_ci95_high"]) == clopper_pearson(9000, 10_000)
    # U250's 0.94 point does not fit: the nearest fitting target (0.5) answers, and time-sharing,
    # the fastest original-only system there, is the baseline named
    u250 = table.iloc[1]
    assert u250["target_value"] == 0.5 and u250["fits"]
    assert u250["strongest_baseline"].startswith("(c)")
    assert u250["gain_vs_strongest"] == pytest.approx(8000 * 3 * 1.1 / 12000)
    # (c) moves with the forwarded share: no interval from TwinDNN's alone
    assert pd.isna(u250.get("gain_vs_strongest_ci95_low", np.nan))


def test_nothing_fitting_is_said_with_its_limit():
    rows = headline_rows()
    rows.loc[rows["board"] == "U250", "fits"] = False
    u250 = answer.fpga_answer(rows, "logit_margin", 0.94, "work_sharing", "point", 10_000).iloc[1]
    assert not u250["fits"] and u250["limit"].startswith("no design of the pair fits")
    assert "does NOT fit" in answer.console_text(pd.DataFrame([u250]), "r", "d")


def test_reference_beside_the_run_with_differences_and_interval_check():
    fresh = answer.fpga_answer(headline_rows(), "logit_margin", 0.94, "work_sharing", "point", 10_000)
    shifted = headline_rows()
    shifted.loc[shifted["board"] == "ZCU104", "twindnn_accuracy"] += 0.005  # inside the +-0.01 interval
    shifted.loc[shifted["board"] == "U250", "twindnn_accuracy"] -= 0.05  # outside it
    reference = answer.fpga_answer(shifted, "logit_margin", 0.94, "work_sharing", "point", 10_000)
    both = answer.with_reference(fresh, reference, "committed")
    assert list(both["difference_twindnn_accuracy"]) == pytest.approx([-0.005, 0.05])
    assert list(both["reference_twindnn_accuracy_inside_ci95"]) == [True, False]
    assert list(both["difference_twindnn_fps"]) == pytest.approx([0.0, 0.0])
    shown = answer.readable(both)
    assert "TwinDNN acc. -0.50 pt, inside" in shown.loc[0, "vs committed"]
    assert "TwinDNN acc. +5.00 pt, outside" in shown.loc[1, "vs committed"]


def test_software_answer_without_the_fpga_half():
    summary = pd.DataFrame([{
        "twin": "w1a1", "gate": g, "selection": "point", "target_kind": "accuracy_recovery", "target_value": t,
        "original_test_accuracy": 0.9, "twin_test_accuracy": 0.8, "twindnn_test_accuracy": 0.8 + 0.1 * t,
        "test_accuracy_recovery": t, "test_forwarded_fraction": t / 2, "twindnn_throughput_fps": 100 / t,
        "original_throughput_fps": 50.0, "twindnn_speedup_vs_original_x": 2 / t, "throughput_device": "CPU x"}
        for g in ("max_softmax", "logit_margin") for t in (0.5, 0.9)])
    guaranteed = summary.assign(selection="guaranteed", twindnn_throughput_fps=summary["twindnn_throughput_fps"] / 2)
    both = pd.concat([summary, guaranteed], ignore_index=True)
    row = answer.software_answer(both, "logit_margin", 0.94, "point", 1000).iloc[0]
    assert row["target_value"] == 0.9 and row["twindnn_fps"] == pytest.approx(100 / 0.9)
    assert "CPU x" in row["board"] and row["gain_vs_strongest"] == pytest.approx(2 / 0.9)
    # the configured threshold rule's row, not the first
    assert answer.software_answer(both, "logit_margin", 0.94, "guaranteed", 1000).iloc[0]["twindnn_fps"] == \
        pytest.approx(50 / 0.9)


def test_answer_step_writes_tables_and_prints_to_the_console(tmp_path):
    headline = tmp_path / "hw_headline.csv"
    headline_rows().to_csv(headline, index=False)
    meta = tmp_path / "meta.json"
    meta.write_text('{"dataset": "cifar10", "test_count": 10000, "source": "test"}')
    stage = AnswerStage(run_name="fresh", dataset="cifar10", twins={"w1a1": {}}, gate="logit_margin",
                        config_sha256="0" * 64, target_value=0.94, scheduler="work_sharing", selection="point",
                        hardware=True, reference_run="committed")
    outputs = {k: tmp_path / f"answer.{k}" for k in ("csv", "md", "html")}
    console = io.StringIO()
    answer_step(stage, {"table": headline, "data_meta": meta}, outputs, progress=console)
    text = console.getvalue()
    assert "TwinDNN's answer, run fresh on cifar10" in text and "2,200" in text
    assert "Reference run committed: no finished run found" in text  # a missing reference is named
    assert len(pd.read_csv(outputs["csv"])) == 2
    html = outputs["html"].read_text()
    assert "<table" in html and "2,200" in html and "Provenance" in html
    assert "<html" not in html and "table.twindnn-answer th" in html  # a fragment, its style scoped
    # turned for the report's narrow text column: one column per board and twin, one row per quantity
    header = re.findall(r"<th>([^<]*)</th>", html)
    assert [c for c in header if ", twin " in c] == [f"{b}, twin w1a1" for b in headline_rows()["board"].unique()]
    assert re.search(r"<td>TwinDNN FPS</td>", html) and "<th>TwinDNN FPS</th>" not in html
    # with the reference present, the table carries it
    answer_step(stage, {"table": headline, "data_meta": meta, "reference": headline}, outputs, progress=io.StringIO())
    assert pd.read_csv(outputs["csv"])["difference_twindnn_fps"].eq(0).all()
    assert "vs committed" in outputs["md"].read_text()


def test_report_pages_show_each_table_as_html(tmp_path):
    csv = tmp_path / "summary.csv"
    pd.DataFrame({"twin": ["w1a1"], "twindnn_test_accuracy": [0.912345], "note": ["a<b"]}).to_csv(csv, index=False)
    md = tmp_path / "summary.md"
    md.write_text("## Operating points\n\n| twin |\n| --- |\n| w1a1 |\n\nProvenance: run `x`.\n")
    out = tmp_path / "summary.html"
    report_pages({"summary": csv, "summary_md": md}, {"summary": out})
    html = out.read_text()
    assert "<caption>Operating points</caption>" in html
    assert "<td>0.9123</td>" in html and "a&lt;b" in html and "Provenance: run `x`." in html


def test_answer_step_without_the_fpga_half_reads_the_summary(tmp_path):
    summary = tmp_path / "summary.csv"
    pd.DataFrame([{"twin": "w1a1", "gate": "max_softmax", "selection": "point", "target_kind": "accuracy_recovery",
                   "target_value": 0.9, "original_test_accuracy": 0.9, "twin_test_accuracy": 0.8,
                   "twindnn_test_accuracy": 0.89, "test_accuracy_recovery": 0.9, "test_forwarded_fraction": 0.3,
                   "twindnn_throughput_fps": 120.0, "original_throughput_fps": 100.0,
                   "twindnn_speedup_vs_original_x": 1.2, "throughput_device": "CPU y"}]).to_csv(summary, index=False)
    meta = tmp_path / "meta.json"
    meta.write_text('{"dataset": "fashion_mnist", "test_count": 500, "source": "test"}')
    stage = AnswerStage(run_name="cpu", dataset="fashion_mnist", twins={"w1a1": {}}, gate="max_softmax",
                        config_sha256="0" * 64, target_value=0.9, scheduler="work_sharing", selection="point",
                        hardware=False, reference_run=None)
    outputs = {k: tmp_path / f"answer.{k}" for k in ("csv", "md", "html")}
    text = answer_step(stage, {"table": summary, "data_meta": meta}, outputs)
    assert "this machine (CPU y)" in text and "measured on this machine" in text and "120" in text
    assert pd.read_csv(outputs["csv"])["gain_vs_strongest"].iloc[0] == pytest.approx(1.2)
