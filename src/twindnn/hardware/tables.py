"""Tables and the figure of the FPGA half. Every figure carries ``source``: "FINN+ estimate"
unless a board measured it ("measured on board")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..cascade import DEFAULT_GATE
from .system_model import SOURCE_ESTIMATE, SOURCE_MEASURED

RES = ("LUT", "DSP", "BRAM_18K", "URAM")
UNESTIMATED_NOTE = ("DuplicateStreams/ElementwiseAdd (residual forks/adds) have no FINN+ resource "
                    "estimate and count 0")


def resource_table(build_jsons: list) -> pd.DataFrame:
    """Per board, twin and network (plus the co-located sum): resources vs the board's budget."""
    rows = []
    for path in build_jsons:
        est = json.loads(Path(path).read_text())
        parts = Path(path).stem.split("__")  # <board>__<twin>__<role>
        row = {"board": est["board"], "twin": parts[1] if len(parts) > 2 else "", "network": parts[-1],
               "estimated_throughput_fps": est["estimated_throughput_fps"],
               "estimated_latency_ms": est["estimated_latency_ms"], "clock_mhz": est["clock_mhz"],
               "unestimated_nodes": est.get("unestimated_nodes", 0)}
        for r in RES:
            row[r] = est[r]
            row[f"{r}_budget"] = est["budget"][r]
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    summed = []
    for (board, twin), g in df[df["network"].isin(["twin", "original"])].groupby(["board", "twin"]):
        row = {"board": board, "twin": twin, "network": "co-located (twin + original)",
               "estimated_throughput_fps": np.nan, "estimated_latency_ms": np.nan,
               "clock_mhz": g["clock_mhz"].iloc[0], "unestimated_nodes": g["unestimated_nodes"].sum()}
        for r in RES:
            row[r] = g[r].sum()
            row[f"{r}_budget"] = g[f"{r}_budget"].iloc[0]
        summed.append(row)
    df = pd.concat([df, pd.DataFrame(summed)], ignore_index=True)
    for r in RES:
        with np.errstate(divide="ignore", invalid="ignore"):
            df[f"{r}_utilization"] = np.where(df[f"{r}_budget"] > 0, df[r] / df[f"{r}_budget"], np.nan)
    df["fits_budget"] = [all(row[r] <= row[f"{r}_budget"] for r in RES) for _, row in df.iterrows()]
    df["note"] = UNESTIMATED_NOTE
    df["source"] = SOURCE_ESTIMATE
    return df


def graph_checks(check_csvs: list) -> pd.DataFrame:
    """The streamline checks (``hw_prepare``), one row per exported network (``twin_<name>``, ``original_q``)."""
    frames = [pd.read_csv(p).assign(exported=Path(p).parent.name) for p in check_csvs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["exported"])


def fps_table(resources: pd.DataFrame, board_jsons: list, check_csvs: list = ()) -> pd.DataFrame:
    """Estimated FPS per board/twin/network, and the measured one where a board ran.

    With ``check_csvs``, each estimated row also says how closely the FINN graph that the
    estimate is of follows the trained network: prediction agreement and both accuracies on
    the checked test images."""
    est = resources[resources["network"] != "co-located (twin + original)"]
    rows = [{"board": r["board"], "twin": r["twin"], "network": r["network"], "throughput_fps":
             r["estimated_throughput_fps"], "latency_ms": r["estimated_latency_ms"], "clock_mhz": r["clock_mhz"],
             "accuracy": np.nan, "source": SOURCE_ESTIMATE} for _, r in est.iterrows()]
    for path in board_jsons:
        m = json.loads(Path(path).read_text())
        parts = Path(path).stem.split("__")
        rows.append({"board": parts[0], "twin": parts[1], "network": parts[2],
                     "throughput_fps": m["measured_throughput_fps"], "latency_ms": np.nan,
                     "clock_mhz": m["clock_mhz"], "accuracy": m.get("accuracy", np.nan), "source": SOURCE_MEASURED})
    table = pd.DataFrame(rows)
    checks = graph_checks(list(check_csvs))
    if table.empty or checks.empty:
        return table
    table["exported"] = np.where(table["network"] == "twin", "twin_" + table["twin"], "original_q")
    checks = checks.rename(columns={"images": "graph_check_images",
                                    "prediction_agreement": "graph_agreement_with_model",
                                    "qonnx_accuracy": "model_accuracy_on_check",
                                    "graph_accuracy": "graph_accuracy_on_check"})
    keep = ["exported", "graph_check_images", "graph_agreement_with_model", "model_accuracy_on_check",
            "graph_accuracy_on_check"]
    table = table.merge(checks[[c for c in keep if c in checks.columns]], on="exported", how="left")
    return table.drop(columns="exported")


HEADLINE = ["board", "twin", "gate", "target_kind", "target_value", "forwarded_fraction", "original_accuracy",
            "twin_accuracy", "twindnn_accuracy", "accuracy_recovery", "twindnn_fps", "original_alone_fps",
            "twin_alone_fps", "throughput_gain", "big_little_fps", "big_little_gain", "mean_latency_ms",
            "fits", "source"]


def headline_table(system_csvs: list) -> pd.DataFrame:
    df = pd.concat([pd.read_csv(p) for p in system_csvs], ignore_index=True)
    return df[[c for c in HEADLINE if c in df.columns]]


def accuracy_vs_throughput_figure(system: pd.DataFrame, out_png, gate: str = DEFAULT_GATE) -> None:
    """Accuracy vs system throughput per board, for one gate (the paper's by default): TwinDNN
    (parallel) and Big/Little (sequential) through the gate's operating points, the oracle gate,
    each twin alone and the original alone. One colour per twin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    boards = list(dict.fromkeys(system["board"]))
    twins = list(dict.fromkeys(system["twin"]))
    colours = dict(zip(twins, sns.color_palette("colorblind", len(twins))))
    available = [g for g in dict.fromkeys(system["gate"]) if g != "oracle"]
    shown = gate if gate in available else (available[0] if available else gate)
    fig, axes = plt.subplots(1, len(boards), figsize=(5.5 * len(boards), 4.2), squeeze=False)
    for ax, board in zip(axes[0], boards):
        d = system[(system["board"] == board) & system["fits"].astype(bool)]
        for twin, g in d.groupby("twin", sort=False):
            c = colours[twin]
            points = g[g["gate"] == shown].sort_values("forwarded_fraction")
            ax.plot(points["twindnn_fps"], points["twindnn_accuracy"], "o-", color=c, label=f"TwinDNN {twin}")
            ax.plot(points["big_little_fps"], points["twindnn_accuracy"], "s--", color=c, alpha=0.6,
                    label=f"Big/Little {twin}")
            o = g[g["gate"] == "oracle"]
            ax.plot(o["twindnn_fps"], o["twindnn_accuracy"], "*", ms=13, color=c, label=f"oracle gate {twin}")
            ax.plot(g["twin_alone_fps"].iloc[:1], g["twin_accuracy"].iloc[:1], "v", ms=8, color=c,
                    label=f"twin {twin} alone")
        if len(d):
            ax.plot(d["original_alone_fps"].iloc[:1], d["original_accuracy"].iloc[:1], "^k", ms=8,
                    label="original alone (whole device)")
        ax.set_xscale("log")
        ax.set_xlabel("system throughput (frames/s, FINN+ estimate)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{board}: gate {shown}, points = recovery targets")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
