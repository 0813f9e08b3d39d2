"""The run's answer in one table, printed when the run ends and shown first in its report.

One row per board and twin at the design point (``hardware.design_point``: gate and recovery
target; ``hardware.scheduler``; ``cascade.selection``): the original's, the twin's and TwinDNN's
test accuracy with 95 % intervals, the recovery, the forwarded share, TwinDNN's throughput and its
gain over each baseline (the strongest one named), whether the pair fits, and what limits it.
A run without the FPGA half answers from the software summary instead: one row per twin, the
cascade timed on this machine.

With a reference run (``reference_run``, e.g. the committed default), each row also carries the
reference's value, the difference, and whether the reference lies inside this run's interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .stats import clopper_pearson

# The systems without TwinDNN's concurrent pair that it is compared with (headline columns <name>_fps
# and gain_vs_<name>): the original alone on the whole device, and the twin and the original
# time-shared on it.
BASELINES = {
    "original_alone": "(a) the strongest whole-device original (best DSP + LUT mix)",
    "original_dsp_alone": "(a, DSP) the original on DSP MACs alone",
    "time_shared": "(c) the twin and the original time-shared at TwinDNN's latency",
}
# Numbers set beside the reference run's.
COMPARED = ("original_accuracy", "twin_accuracy", "twindnn_accuracy", "accuracy_recovery", "forwarded_fraction",
            "twindnn_fps", "gain_vs_strongest")


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


def nearest_target(rows: pd.DataFrame, target: float) -> pd.Series:
    """The row whose target value is nearest ``target`` (the first of equals)."""
    return rows.loc[(rows["target_value"].astype(float) - float(target)).abs().idxmin()]


def design_point_row(rows: pd.DataFrame, gate: str, target: float, scheduler: str) -> pd.Series:
    """The row of the configured gate (else any gate but the oracle), scheduler and nearest
    recovery target."""
    rows = rows[rows["scheduler"] == scheduler]
    chosen = rows[(rows["gate"] == gate) & (rows["target_kind"] == "accuracy_recovery")]
    if chosen.empty:
        chosen = rows[rows["gate"] != "oracle"]
    if chosen.empty:
        raise ValueError(f"no operating point of scheduler {scheduler!r} in the table")
    return nearest_target(chosen, target)


def _with_accuracy_intervals(row: dict, test_count: int) -> dict:
    for name in ("original", "twin"):
        acc = row[f"{name}_accuracy"]
        if _finite(acc) and test_count > 0:
            low, high = clopper_pearson(round(acc * test_count), test_count)
            row[f"{name}_accuracy_ci95_low"], row[f"{name}_accuracy_ci95_high"] = low, high
    return row


def _strongest(row: pd.Series) -> dict:
    """The fastest baseline that meets its constraint, and TwinDNN's gain over it. The interval of
    the gain is TwinDNN's FPS interval over a fixed rate, so only where the baseline's rate does not
    move with the forwarded share: not for time-sharing (c), which does."""
    candidates = {b: float(row[f"{b}_fps"]) for b in BASELINES
                  if f"{b}_fps" in row and _finite(row[f"{b}_fps"]) and float(row[f"{b}_fps"]) > 0}
    if not candidates:
        return {"strongest_baseline": "none", "strongest_baseline_fps": float("nan"),
                "gain_vs_strongest": float("nan")}
    best = max(candidates, key=candidates.get)
    fps = candidates[best]
    out = {"strongest_baseline": BASELINES[best], "strongest_baseline_fps": fps,
           "gain_vs_strongest": float(row["twindnn_fps"]) / fps}
    if best != "time_shared":
        for end in ("low", "high"):
            col = f"twindnn_fps_ci95_{end}"
            if col in row and _finite(row[col]):
                out[f"gain_vs_strongest_ci95_{end}"] = float(row[col]) / fps
    return out


def fpga_answer(headline: pd.DataFrame, gate: str, target: float, scheduler: str, selection: str,
                test_count: int) -> pd.DataFrame:
    """The answer of a run with the FPGA half, from its ``hw_headline.csv``."""
    rows = headline[headline["selection"] == selection] if "selection" in headline else headline
    out = []
    for (board, twin), group in rows.groupby(["board", "twin"], sort=False):
        fitting = group[group["fits"].astype(bool)]
        r = design_point_row(fitting if not fitting.empty else group, gate, target, scheduler)
        row = {"board": board, "twin": twin, "gate": r["gate"], "target_value": float(r["target_value"]),
               "scheduler": scheduler}
        for key in ("original_accuracy", "twin_accuracy", "twindnn_accuracy", "accuracy_recovery",
                    "forwarded_fraction", "twindnn_fps", "original_alone_fps", "original_dsp_alone_fps",
                    "time_shared_fps", "gain_vs_original_alone", "gain_vs_original_dsp_alone",
                    "gain_vs_time_shared", "gain_vs_original_in_pair"):
            row[key] = float(r[key]) if key in r and _finite(r[key]) else float("nan")
            for end in ("low", "high"):
                col = f"{key}_ci95_{end}"
                if col in r and _finite(r[col]):
                    row[col] = float(r[col])
        row.update(_strongest(r))
        row["fits"] = bool(r["fits"]) if pd.notna(r["fits"]) else False
        limit = str(r["pair_limit"]) if "pair_limit" in r and pd.notna(r["pair_limit"]) else "not recorded"
        row["limit"] = limit if row["fits"] else (
            "no design of the pair fits the board's budget (weights on chip): " + limit)
        row["throughput_source"] = str(r.get("source", "FINN+ estimate"))
        out.append(_with_accuracy_intervals(row, test_count))
    return pd.DataFrame(out)


def software_answer(summary: pd.DataFrame, gate: str, target: float, selection: str, test_count: int) -> pd.DataFrame:
    """The answer of a run without the FPGA half, from its ``summary.csv`` (throughput measured on
    the machine that ran it), at the threshold rule ``selection``."""
    out = []
    if "selection" in summary:
        summary = summary[summary["selection"] == selection]
    for twin, group in summary.groupby("twin", sort=False):
        group = group[group["target_kind"] == "accuracy_recovery"]
        chosen = group[group["gate"] == gate]
        if chosen.empty:
            chosen = group
        if chosen.empty:
            continue
        r = nearest_target(chosen, target)
        row = {"board": f"this machine ({r.get('throughput_device', 'unknown device')})", "twin": twin,
               "gate": r["gate"], "target_value": float(r["target_value"]), "scheduler": "cascade (measured)",
               "original_accuracy": float(r["original_test_accuracy"]), "twin_accuracy": float(r["twin_test_accuracy"]),
               "twindnn_accuracy": float(r["twindnn_test_accuracy"]),
               "accuracy_recovery": float(r["test_accuracy_recovery"]),
               "forwarded_fraction": float(r["test_forwarded_fraction"]),
               "twindnn_fps": float(r["twindnn_throughput_fps"]),
               "original_alone_fps": float(r["original_throughput_fps"]),
               "gain_vs_original_alone": float(r["twindnn_speedup_vs_original_x"])}
        for key, src in (("twindnn_accuracy", "twindnn_test_accuracy"), ("accuracy_recovery", "test_accuracy_recovery"),
                         ("forwarded_fraction", "test_forwarded_fraction")):
            for end in ("low", "high"):
                if f"{src}_ci95_{end}" in r and _finite(r[f"{src}_ci95_{end}"]):
                    row[f"{key}_ci95_{end}"] = float(r[f"{src}_ci95_{end}"])
        row.update({"strongest_baseline": "the original alone on this machine",
                    "strongest_baseline_fps": row["original_alone_fps"], "gain_vs_strongest": row["gain_vs_original_alone"],
                    "fits": True, "limit": "not an FPGA: the cascade timed on this machine",
                    "throughput_source": "measured on this machine"})
        out.append(_with_accuracy_intervals(row, test_count))
    return pd.DataFrame(out)


def with_reference(answer: pd.DataFrame, reference: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """``answer`` with, per compared number, the reference run's value, the difference (this run
    minus the reference) and whether the reference lies inside this run's 95 % interval."""
    if reference is None or reference.empty:
        return answer
    ref = reference.set_index(["board", "twin"])
    out = answer.copy()
    out["reference_run"] = name
    for key in COMPARED:
        values, inside = [], []
        for _, row in answer.iterrows():
            ref_value = ref[key].get((row["board"], row["twin"]), float("nan")) if key in ref else float("nan")
            values.append(float(ref_value))
            low, high = row.get(f"{key}_ci95_low"), row.get(f"{key}_ci95_high")
            if _finite(ref_value) and _finite(low) and _finite(high):
                inside.append(bool(low - 1e-12 <= ref_value <= high + 1e-12))
            else:
                inside.append(None)
        out[f"reference_{key}"] = values
        out[f"difference_{key}"] = out[key] - out[f"reference_{key}"]
        out[f"reference_{key}_inside_ci95"] = inside
    return out


# --------------------------------------------------------------------------- for reading


def _pct(v) -> str:
    return f"{100 * v:.2f} %" if _finite(v) else "n/a"


def _interval(row, key, fmt) -> str:
    low, high = row.get(f"{key}_ci95_low"), row.get(f"{key}_ci95_high")
    value = fmt(row.get(key))
    if _finite(low) and _finite(high):
        return f"{value} [{fmt(low)}, {fmt(high)}]"
    return value


def _fps(v) -> str:
    return f"{v:,.0f}" if _finite(v) else "n/a"


def _x(v) -> str:
    return f"{v:.2f}x" if _finite(v) else "n/a"


def _ratio(v) -> str:
    return f"{v:.2f}" if _finite(v) else "n/a"


def readable(answer: pd.DataFrame) -> pd.DataFrame:
    """The answer with formatted cells (percentages, FPS, gains with their intervals)."""
    rows = []
    for _, r in answer.iterrows():
        row = {
            "board": r["board"], "twin": r["twin"],
            "design point": f"{r['gate']}, recovery target {r['target_value']:g}, {r['scheduler']}",
            "original acc.": _interval(r, "original_accuracy", _pct),
            "twin acc.": _interval(r, "twin_accuracy", _pct),
            "TwinDNN acc.": _interval(r, "twindnn_accuracy", _pct),
            "recovery": _interval(r, "accuracy_recovery", _ratio),
            "forwarded": _interval(r, "forwarded_fraction", _pct),
            "TwinDNN FPS": _interval(r, "twindnn_fps", _fps),
            "gain vs strongest baseline": _interval(r, "gain_vs_strongest", _x),
            "strongest baseline": f"{r['strongest_baseline']} ({_fps(r['strongest_baseline_fps'])} FPS)",
            "gain vs (a)": _interval(r, "gain_vs_original_alone", _x),
            "fits": "yes" if r["fits"] else "no",
            "limit": r["limit"],
        }
        if "reference_run" in r and isinstance(r["reference_run"], str):
            parts = []
            for key, fmt, label in (("twindnn_accuracy", lambda d: f"{100 * d:+.2f} pt", "TwinDNN acc."),
                                    ("accuracy_recovery", lambda d: f"{d:+.2f}", "recovery"),
                                    ("twindnn_fps", lambda d: f"{d:+,.0f}", "FPS"),
                                    ("gain_vs_strongest", lambda d: f"{d:+.2f}x", "gain")):
                diff, inside = r[f"difference_{key}"], r[f"reference_{key}_inside_ci95"]
                where = "" if inside is None or (isinstance(inside, float) and math.isnan(inside)) else (
                    ", inside" if inside else ", outside")
                parts.append(f"{label} {fmt(diff) if _finite(diff) else 'n/a'}{where}")
            row[f"vs {r['reference_run']}"] = "; ".join(parts)
        rows.append(row)
    return pd.DataFrame(rows)


def by_column(shown: pd.DataFrame) -> pd.DataFrame:
    """``readable``'s table turned: one column per board and twin, one row per quantity (what a
    narrow page column holds; the wide form is the CSV and Markdown)."""
    turned = shown.drop(columns=["board", "twin"]).T
    turned.columns = [f"{b}, twin {t}" for b, t in zip(shown["board"], shown["twin"])]
    return turned.rename_axis("").reset_index()


def console_text(answer: pd.DataFrame, run_name: str, dataset: str) -> str:
    """A few lines per row for the console at the end of the run."""
    lines = [f"TwinDNN's answer, run {run_name} on {dataset} (test split, 95 % intervals in brackets):"]
    for (_, r), (_, shown) in zip(answer.iterrows(), readable(answer).iterrows()):
        lines.append(f"* {shown['board']}, twin {shown['twin']} at {shown['design point']}:")
        lines.append(f"    accuracy: original {shown['original acc.']}, twin {shown['twin acc.']}, "
                     f"TwinDNN {shown['TwinDNN acc.']}; recovery {shown['recovery']}; "
                     f"forwarded {shown['forwarded']}")
        fit = "fits" if r["fits"] else "does NOT fit"
        lines.append(f"    throughput ({r['throughput_source']}): TwinDNN {shown['TwinDNN FPS']} FPS, "
                     f"{shown['gain vs strongest baseline']} over the strongest baseline, {shown['strongest baseline']}")
        lines.append(f"    {fit}: {r['limit']}")
        ref_col = next((c for c in shown.index if c.startswith("vs ")), None)
        if ref_col:
            lines.append(f"    {ref_col} (difference; reference inside this run's interval?): {shown[ref_col]}")
    return "\n".join(lines)
