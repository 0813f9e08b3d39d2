"""The paper's tables and figures from the workflow's CSV and logits files.

Pure functions: data frames (and logits) in, files out. Figures are drawn on
``matplotlib.figure.Figure`` objects, never through pyplot's global state, so no
display backend is needed.

Accuracies are fractions in [0, 1] of the test split; throughputs are images
per second measured on the machine that ran ``twindnn.throughput``, not on an FPGA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from .cascade import DEFAULT_GATE, GATES, confidence, get_gate
from .plotting import panels, save_figure, twin_colours
from .system import model as system_model

SUMMARY_COLUMNS = [
    "twin",
    "gate",
    "selection",
    "target_kind",
    "target_value",
    "target_reached_val",
    "target_met_test",
    "val_threshold",
    "original_test_accuracy",
    "twin_test_accuracy",
    "twindnn_test_accuracy",
    "twindnn_test_accuracy_ci95_low",
    "twindnn_test_accuracy_ci95_high",
    "test_accuracy_recovery",
    "test_accuracy_recovery_ci95_low",
    "test_accuracy_recovery_ci95_high",
    "test_recovery_meaningful",
    "test_accuracy_loss",
    "test_accuracy_loss_ci95_low",
    "test_accuracy_loss_ci95_high",
    "test_forwarded_fraction",
    "test_forwarded_fraction_ci95_low",
    "test_forwarded_fraction_ci95_high",
    "original_throughput_fps",
    "twin_throughput_fps",
    "twindnn_throughput_fps",
    "twindnn_ideal_throughput_fps",
    "twindnn_speedup_vs_original_x",
    # The schedulers of twindnn.system.model at the measured single-network rates, as if
    # the twin and the original each had a device of their own (the FPGA tables do this with
    # FINN+ estimates): twin_first's accuracy is the cascade's; work_sharing's is the mix it makes.
    "twin_first_model_fps",
    "work_sharing_model_fps",
    "work_sharing_test_accuracy",
    "throughput_device",
]


# --------------------------------------------------------------------------- tables

CI = ("_ci95_low", "_ci95_high")  # 95 % intervals (twindnn.operating_points)


def _throughput_of(rows: pd.DataFrame, model: str) -> float:
    values = rows.loc[rows["model"] == model, "throughput_fps"]
    return float(values.median()) if len(values) else math.nan


def _cascade_fps(rows: pd.DataFrame, fraction: float) -> float:
    """Measured cascade rate at ``fraction``: linear between measured fractions, nearest outside them."""
    curve = rows[rows["model"] == "cascade"].groupby("forwarded_fraction")["throughput_fps"].median()
    if curve.empty or not np.isfinite(fraction):
        return math.nan
    return float(np.interp(fraction, curve.index.to_numpy(), curve.to_numpy()))


def summary_table(operating_points: pd.DataFrame, throughput: pd.DataFrame) -> pd.DataFrame:
    """One row per twin x gate x target: accuracy on test and measured speed.

    ``operating_points`` is ``twindnn.cascade.run_cascade``'s table concatenated
    over twins with a ``twin`` column; ``throughput`` is
    ``twindnn.throughput.measure_throughput``'s table likewise. The TwinDNN
    throughput is the measured cascade rate interpolated at the test forwarded
    fraction (the nearest measured one outside the measured range); the ideal
    rate is ``1 / (1 / twin_fps + f / original_fps)``. A twin without
    throughput rows gets NaN speeds. The ``*_model_*`` columns put the two
    networks on separate devices at their measured rates and apply each
    scheduler of :data:`twindnn.system.model.SCHEDULERS` (work sharing:
    an idle original takes fresh inputs, which get the original's accuracy).
    Columns: ``SUMMARY_COLUMNS``.
    """
    rows = []
    for point in operating_points.to_dict("records"):
        speed = throughput[throughput["twin"] == point["twin"]]
        f = float(point["test_forwarded_fraction"])
        original_fps, twin_fps = _throughput_of(speed, "original"), _throughput_of(speed, "twin")
        twindnn_fps = _cascade_fps(speed, f)
        with np.errstate(divide="ignore", invalid="ignore"):
            ideal = 1.0 / (1.0 / np.float64(twin_fps) + f / np.float64(original_fps))
        devices = sorted(speed["device"].dropna().unique()) if "device" in speed else []
        rows.append(
            {
                "twin": point["twin"],
                "gate": point["gate"],
                "selection": point["selection"],
                "target_kind": point["target_kind"],
                "target_value": point["target_value"],
                "target_reached_val": bool(point["target_reached_val"]),
                "target_met_test": bool(point["target_met_test"]),
                "val_threshold": point["threshold"],
                "original_test_accuracy": point["test_original_accuracy"],
                "twin_test_accuracy": point["test_twin_accuracy"],
                "twindnn_test_accuracy": point["test_system_accuracy"],
                **{f"twindnn_test_accuracy{s}": point[f"test_system_accuracy{s}"] for s in CI},
                **{f"test_{k}{s}": point[f"test_{k}{s}"]
                   for k in ("accuracy_recovery", "accuracy_loss") for s in ("", *CI)},
                "test_recovery_meaningful": bool(point["test_recovery_meaningful"]),
                "test_forwarded_fraction": f,
                **{f"test_forwarded_fraction{s}": point[f"test_forwarded_fraction{s}"] for s in CI},
                "original_throughput_fps": original_fps,
                "twin_throughput_fps": twin_fps,
                "twindnn_throughput_fps": twindnn_fps,
                "twindnn_ideal_throughput_fps": float(ideal),
                "twindnn_speedup_vs_original_x": twindnn_fps / original_fps if original_fps > 0 else math.nan,
                "twin_first_model_fps": float(system_model.system_fps(twin_fps, original_fps, f, "twin_first")),
                "work_sharing_model_fps": float(system_model.system_fps(twin_fps, original_fps, f, "work_sharing")),
                "work_sharing_test_accuracy": float(system_model.system_accuracy(
                    point["test_system_accuracy"], point["test_original_accuracy"], twin_fps, original_fps, f,
                    "work_sharing")),
                "throughput_device": "; ".join(devices) if devices else "not measured",
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# --------------------------------------------------------------------------- figures


def plot_accuracy_vs_forwarded(sweeps: pd.DataFrame, out: str | Path, title: str = "") -> None:
    """Test accuracy of the cascade against the forwarded fraction, one panel per twin.

    ``sweeps``: ``run_cascade``'s sweep tables concatenated with a ``twin`` column.
    One line per gate, the oracle as a star, dashed/dotted lines for the original
    and the twin alone.
    """
    test = sweeps[sweeps["split"] == "test"]
    twins = list(dict.fromkeys(test["twin"]))
    present = set(test["gate"]) - {"oracle"}
    # Registry order (the paper's gate first); gates no longer registered go last.
    gates = [g for g in GATES if g in present] + sorted(present - set(GATES))
    palette = dict(zip(gates, sns.color_palette("colorblind", len(gates))))
    fig, axes = panels(len(twins))
    for ax, twin in zip(axes, twins):
        rows = test[test["twin"] == twin]
        curves = rows[rows["gate"] != "oracle"]
        sns.lineplot(
            data=curves,
            x="forwarded_fraction",
            y="system_accuracy",
            hue="gate",
            hue_order=gates,
            palette=palette,
            estimator=None,
            sort=False,
            ax=ax,
            linewidth=1.2,
        )
        ax.axhline(
            rows["original_accuracy"].iloc[0], color="black", linestyle="--", linewidth=0.8, label="original alone"
        )
        ax.axhline(rows["twin_accuracy"].iloc[0], color="grey", linestyle=":", linewidth=0.8, label="twin alone")
        best = rows[rows["gate"] == "oracle"]
        if len(best):
            ax.scatter(
                best["forwarded_fraction"],
                best["system_accuracy"],
                marker="*",
                s=120,
                color="crimson",
                zorder=5,
                label="oracle gate",
            )
        ax.set(title=f"twin: {twin}", xlabel="forwarded fraction (test)", ylabel="TwinDNN test accuracy", xlim=(0, 1))
        ax.legend(fontsize=9)
    save_figure(fig, out, title)


def plot_confidence_histograms(
    twin_logits: Mapping[str, Mapping], out: str | Path, title: str = "", split: str = "test", gate: str = DEFAULT_GATE
) -> None:
    """Histograms of the twin's confidence under ``gate``, right vs wrong answers, one panel per twin.

    ``twin_logits`` maps a twin's name to its logits file contents
    (``<split>_logits``, ``<split>_labels``). Densities are normalised per
    group, so the rarer wrong answers stay visible.
    """
    description = get_gate(gate).description
    fig, axes = panels(len(twin_logits))
    for ax, (twin, data) in zip(axes, twin_logits.items()):
        logits, labels = np.asarray(data[f"{split}_logits"]), np.asarray(data[f"{split}_labels"])
        frame = pd.DataFrame(
            {
                "confidence": confidence(logits, gate),
                "twin answer": np.where(logits.argmax(axis=1) == labels, "right", "wrong"),
            }
        )
        sns.histplot(
            data=frame,
            x="confidence",
            hue="twin answer",
            hue_order=["right", "wrong"],
            bins=40,  # over the data's range: not every gate's scores lie in [0, 1]
            stat="density",
            common_norm=False,
            element="step",
            ax=ax,
        )
        ax.set(title=f"twin: {twin} ({split})", xlabel=f"{description} of the twin", ylabel="density")
    save_figure(fig, out, title)


def plot_accuracy_vs_throughput(summary: pd.DataFrame, out: str | Path, title: str = "") -> None:
    """Test accuracy against measured throughput for the original, each twin and each TwinDNN point.

    ``summary``: the table from ``summary_table``. Points without a measured
    throughput are left out.
    """
    points = []
    for twin, rows in summary.groupby("twin", sort=False):
        first = rows.iloc[0]
        points.append(
            {
                "twin": twin,
                "system": "original",
                "fps": first["original_throughput_fps"],
                "accuracy": first["original_test_accuracy"],
            }
        )
        points.append(
            {
                "twin": twin,
                "system": "twin alone",
                "fps": first["twin_throughput_fps"],
                "accuracy": first["twin_test_accuracy"],
            }
        )
        for row in rows.itertuples(index=False):
            points.append(
                {
                    "twin": twin,
                    "system": f"TwinDNN ({row.selection})",
                    "fps": row.twindnn_throughput_fps,
                    "accuracy": row.twindnn_test_accuracy,
                    "low": row.twindnn_test_accuracy_ci95_low,
                    "high": row.twindnn_test_accuracy_ci95_high,
                }
            )
    frame = pd.DataFrame(points, columns=["twin", "system", "fps", "accuracy", "low", "high"])
    frame = frame.dropna(subset=["fps", "accuracy"])
    frame = frame[frame["fps"] > 0]
    fig, axes = panels(1, width=7.5, height=4.8)
    ax = axes[0]
    if len(frame):
        sns.scatterplot(
            data=frame,
            x="fps",
            y="accuracy",
            hue="twin",
            palette=twin_colours(frame["twin"]),
            style="system",
            style_order=["original", "twin alone", "TwinDNN (point)", "TwinDNN (guaranteed)"],
            s=60,
            ax=ax,
        )
        bars = frame.dropna(subset=["low", "high"])  # the TwinDNN points' 95 % intervals over test images
        ax.errorbar(bars["fps"], bars["accuracy"], yerr=[np.maximum(bars["accuracy"] - bars["low"], 0),
                                                             np.maximum(bars["high"] - bars["accuracy"], 0)],
                    fmt="none", ecolor="grey", elinewidth=0.8, capsize=2, zorder=0)
        ax.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.legend(fontsize=9)
    else:
        ax.text(0.5, 0.5, "no throughput measured", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="measured throughput (images/s, this machine, not FPGA)",
           ylabel="test accuracy (bars: 95 % intervals over test images)")
    save_figure(fig, out, title)


def anchor_table(summary: pd.DataFrame, anchors: dict, twin_bits: dict, dataset: str,
                 fpga_headline: pd.DataFrame | None = None, gate: str = DEFAULT_GATE,
                 design: dict | None = None) -> pd.DataFrame:
    """This run's figures beside the published anchors, one row per comparison.

    ``twin_bits``: twin name -> (weight_bits, act_bits); ``fpga_headline``: the hardware headline
    table (FINN+ estimates), if the run built one. The paper's recovery is compared with the
    recovery **measured on test** (with its 95 % interval) at the operating point whose target is
    nearest to it, once per selection rule; never with the target itself.
    """
    paper = anchors["paper"]
    rows = []
    points = summary[(summary["gate"] == gate) & (summary["target_kind"] == "accuracy_recovery")]
    for (twin, selection), g in points.groupby(["twin", "selection"], sort=False):
        at = g.iloc[(g["target_value"] - paper["accuracy_recovery"]).abs().argsort()[:1]].iloc[0]
        flag = "" if at.test_recovery_meaningful else "; the original-twin gap is within noise, recovery is not meaningful"
        rows.append({"comparison": f"accuracy recovery on test, twin {twin} ({gate} gate, {selection} "
                                   f"threshold for target {at.target_value:g})",
                     "anchor": paper["accuracy_recovery"], "anchor_source": paper["source"],
                     "this_run": at.test_accuracy_recovery,
                     "note": f"95 % interval [{at.test_accuracy_recovery_ci95_low:.3f}, "
                             f"{at.test_accuracy_recovery_ci95_high:.3f}]; forwarded fraction "
                             f"{at.test_forwarded_fraction:.3f} on test; target met on test: "
                             f"{'yes' if at.target_met_test else 'no'}{flag}"})
    authors = anchors.get("design", {})
    for aspect, theirs in (authors.get("aspects") or {}).items():
        if design and aspect in design:
            rows.append({"comparison": f"design: {aspect}", "anchor": theirs, "anchor_source": authors["source"],
                         "this_run": design[aspect], "note": ""})
    published = anchors["published_accuracy"]
    if dataset == published["dataset"]:
        for twin, (w, a) in twin_bits.items():
            acc = summary.loc[summary["twin"] == twin, "twin_test_accuracy"]
            for m in published["models"]:
                if (m["weight_bits"], m["act_bits"]) == (w, a) and len(acc):
                    rows.append({"comparison": f"twin {twin} test accuracy vs {m['model']} W{w}A{a}",
                                 "anchor": m["accuracy"], "anchor_source": published["source"],
                                 "this_run": float(acc.iloc[0]), "note": "our twin is a ResNet, see config"})
        orig = summary["original_test_accuracy"].iloc[0] if len(summary) else float("nan")
        for m in published["models"]:
            if m["model"] == "ResNet-18":
                rows.append({"comparison": f"original (float) vs {m['model']} W{m['weight_bits']}A{m['act_bits']}",
                             "anchor": m["accuracy"], "anchor_source": published["source"], "this_run": orig,
                             "note": "our original is float"})
    if fpga_headline is not None and len(fpga_headline):
        h = fpga_headline[(fpga_headline["gate"] == gate) & fpga_headline["fits"].astype(bool)
                          & (fpga_headline["scheduler"] == "work_sharing")]
        for (board, twin), g in h.groupby(["board", "twin"], sort=False):
            at = g.iloc[(g["target_value"] - paper["accuracy_recovery"]).abs().argsort()[:1]].iloc[0]
            for base, what in (("original_in_pair", "the same original design alone (the paper's baseline)"),
                               ("original_alone", "the strongest whole-device original (best DSP + LUT mix)"),
                               ("original_dsp_alone", "the whole-device original from DSP designs only")):
                if f"gain_vs_{base}" not in at:
                    continue
                rows.append({"comparison": f"throughput gain over {what}, {board}, twin {twin} "
                                           f"(work sharing, target {at.target_value:g})",
                             "anchor": paper["throughput_gain_x"], "anchor_source": paper["source"],
                             "this_run": at[f"gain_vs_{base}"],
                             "note": f"{at.source}; forwarded {at.forwarded_fraction:.3f}"})
    return pd.DataFrame(rows, columns=["comparison", "anchor", "anchor_source", "this_run", "note"])
