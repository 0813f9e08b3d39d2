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
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from twindnn.cascade import DEFAULT_GATE, GATES, confidence, get_gate
from twindnn.provenance import provenance_footer

SUMMARY_COLUMNS = [
    "twin",
    "gate",
    "target_kind",
    "target_value",
    "target_reached",
    "val_threshold",
    "original_test_accuracy",
    "twin_test_accuracy",
    "twindnn_test_accuracy",
    "test_accuracy_recovery",
    "test_forwarded_fraction",
    "original_throughput_fps",
    "twin_throughput_fps",
    "twindnn_throughput_fps",
    "twindnn_ideal_throughput_fps",
    "twindnn_speedup_vs_original_x",
    # The schedulers of twindnn.hardware.system_model at the measured single-network rates, as if
    # the twin and the original each had a device of their own (the FPGA tables do this with
    # FINN+ estimates): twin_first's accuracy is the cascade's; work_sharing's is the mix it makes.
    "twin_first_model_fps",
    "work_sharing_model_fps",
    "work_sharing_test_accuracy",
    "throughput_device",
]


# --------------------------------------------------------------------------- tables


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
    scheduler of :data:`twindnn.hardware.system_model.SCHEDULERS` (work sharing:
    an idle original takes fresh inputs, which get the original's accuracy).
    Columns: ``SUMMARY_COLUMNS``.
    """
    from twindnn.hardware import system_model

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
                "target_kind": point["target_kind"],
                "target_value": point["target_value"],
                "target_reached": bool(point["target_reached"]),
                "val_threshold": point["threshold"],
                "original_test_accuracy": point["test_original_accuracy"],
                "twin_test_accuracy": point["test_twin_accuracy"],
                "twindnn_test_accuracy": point["test_system_accuracy"],
                "test_accuracy_recovery": point["test_accuracy_recovery"],
                "test_forwarded_fraction": f,
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


def _format_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def _display_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Cells as strings, and the devices pulled out of the table into a note."""
    devices = sorted(df["throughput_device"].dropna().unique()) if "throughput_device" in df else []
    shown = df.drop(columns=["throughput_device"], errors="ignore")
    return shown.apply(lambda column: column.map(_format_cell)), devices


def markdown_table(df: pd.DataFrame) -> str:
    """``df`` as a Markdown table, cells as ``str`` gives them (format them first)."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(df.columns), "| " + " | ".join("---" for _ in df.columns) + " |"]
    lines += [line(row) for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    replacements = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "`": "",
    }
    return "".join(replacements.get(ch, ch) for ch in text)


def device_line(devices: list[str]) -> str:
    """The sentence that keeps measured speeds from being mistaken for FPGA numbers."""
    where = "; ".join(devices) if devices else "no device (throughput not measured)"
    return f"Throughput measured on {where} (this machine), not on an FPGA."


def write_table(
    df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, tex_path: str | Path, provenance: dict, title: str
) -> None:
    """Write ``df`` as tidy CSV (all columns, full precision), Markdown and LaTeX.

    Markdown and LaTeX round numbers for reading, move the ``throughput_device``
    column into a note "Throughput measured on <device> (this machine), not on
    an FPGA." (the provenance device when the column is absent), and end with the
    provenance footer.
    """
    for path in (csv_path, md_path, tex_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)

    shown, devices = _display_frame(df)
    if "throughput_device" not in df:
        devices = [provenance.get("device", "unknown device")]
    notes = [device_line(devices), provenance_footer(provenance)]

    markdown = f"## {title}\n\n{markdown_table(shown)}\n\n" + "\n\n".join(notes) + "\n"
    Path(md_path).write_text(markdown)

    latex = shown.to_latex(index=False, escape=True, caption=_latex_escape(title), position="htbp")
    # The table is wide: scale it to the text width (needs graphicx; booktabs for the rules).
    latex = latex.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}", 1)
    latex = latex.replace("\\end{tabular}\n", "\\end{tabular}}\n", 1)
    footer = "\\par\\footnotesize " + " ".join(_latex_escape(n) for n in notes) + "\n"
    end = latex.rfind("\\end{table}")
    header = "% Needs \\usepackage{booktabs,graphicx}.\n"
    Path(tex_path).write_text(header + latex[:end] + footer + latex[end:])


# --------------------------------------------------------------------------- figures


def _save(fig: Figure, out: str | Path, title: str) -> None:
    fig.suptitle(title, fontsize=9)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")


def _panels(n: int, width: float = 4.5, height: float = 3.6) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * max(n, 1), height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(n, 1), squeeze=False)[0])
    return fig, axes


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
    fig, axes = _panels(len(twins))
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
        ax.legend(fontsize=7)
    _save(fig, out, title)


def plot_confidence_histograms(
    twin_logits: Mapping[str, Mapping], out: str | Path, title: str = "", split: str = "test", gate: str = DEFAULT_GATE
) -> None:
    """Histograms of the twin's confidence under ``gate``, right vs wrong answers, one panel per twin.

    ``twin_logits`` maps a twin's name to its logits file contents
    (``<split>_logits``, ``<split>_labels``). Densities are normalised per
    group, so the rarer wrong answers stay visible.
    """
    description = get_gate(gate).description
    fig, axes = _panels(len(twin_logits))
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
    _save(fig, out, title)


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
                    "system": "TwinDNN",
                    "fps": row.twindnn_throughput_fps,
                    "accuracy": row.twindnn_test_accuracy,
                }
            )
    frame = pd.DataFrame(points, columns=["twin", "system", "fps", "accuracy"]).dropna()
    frame = frame[frame["fps"] > 0]
    fig, axes = _panels(1, width=6.0, height=4.2)
    ax = axes[0]
    if len(frame):
        sns.scatterplot(
            data=frame,
            x="fps",
            y="accuracy",
            hue="twin",
            style="system",
            style_order=["original", "twin alone", "TwinDNN"],
            s=60,
            ax=ax,
        )
        ax.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no throughput measured", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="measured throughput (images/s, this machine, not FPGA)", ylabel="test accuracy")
    _save(fig, out, title)


def run_design(config: dict) -> dict:
    """This run's answer to each aspect of the authors' design (``anchors.yaml: design``)."""
    hw = config.get("hardware") or {}
    twins = "; ".join(f"{name}: {'ternary' if t.get('ternary') else str(t.get('weight_bits')) + '-bit'} weights"
                      f" ({t.get('weight_scaling', 'per_tensor').replace('_', ' ')} scale), {t['act_bits']}-bit "
                      "activations" for name, t in config["twins"].items())
    design = {"gate": f"{config['cascade']['gates'][0]} (cascade.gates[0]); the others beside it",
              "twin precision": twins}
    if hw.get("enabled"):
        q = hw["original_quant"]
        design.update({
            "gate": f"{hw['design_point']['gate']} (design point); all of {config['cascade']['gates']} in the tables",
            "scheduler": f"{hw['scheduler']} (design point); work_sharing and twin_first in the tables",
            "original precision": f"{q['weight_bits']}-bit weights, {q['act_bits']}-bit activations",
            "clock": f"{hw['clock_mhz']} MHz" if hw.get("clock_mhz") else "each board file's clock",
            "accelerators": f"FINN+ dataflow, weights on chip; twin MACs: {hw['twin_mac']}, original: "
                            f"{hw['original_mac']} (FINN+ estimates)"})
    return design


def anchor_table(summary: pd.DataFrame, anchors: dict, twin_bits: dict, dataset: str,
                 fpga_headline: pd.DataFrame | None = None, gate: str = DEFAULT_GATE,
                 design: dict | None = None) -> pd.DataFrame:
    """This run's figures beside the published anchors, one row per comparison.

    ``twin_bits``: twin name -> (weight_bits, act_bits); ``fpga_headline``: the hardware headline
    table (FINN+ estimates), if the run built one. Recovery is read at the operating point whose
    target equals the paper's recovery, on the test split.
    """
    paper = anchors["paper"]
    rows = []
    points = summary[(summary["gate"] == gate) & (summary["target_kind"] == "accuracy_recovery")]
    for twin, g in points.groupby("twin", sort=False):
        at = g.iloc[(g["target_value"] - paper["accuracy_recovery"]).abs().argsort()[:1]].iloc[0]
        rows.append({"comparison": f"accuracy recovery, twin {twin} ({gate} gate, target {at.target_value:g})",
                     "anchor": paper["accuracy_recovery"], "anchor_source": paper["source"],
                     "this_run": at.test_accuracy_recovery,
                     "note": f"forwarded fraction {at.test_forwarded_fraction:.3f} on test"})
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
                               ("original_alone", "the original's best whole-device design")):
                rows.append({"comparison": f"throughput gain over {what}, {board}, twin {twin} "
                                           f"(work sharing, target {at.target_value:g})",
                             "anchor": paper["throughput_gain_x"], "anchor_source": paper["source"],
                             "this_run": at[f"gain_vs_{base}"],
                             "note": f"{at.source}; forwarded {at.forwarded_fraction:.3f}"})
    return pd.DataFrame(rows, columns=["comparison", "anchor", "anchor_source", "this_run", "note"])
