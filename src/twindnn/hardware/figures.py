"""The FPGA figures: accuracy against system throughput, and the paper's speed-up against recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..cascade import DEFAULT_GATE
from ..plotting import save_figure


def accuracy_vs_throughput_figure(system: pd.DataFrame, out_png, gate: str = DEFAULT_GATE,
                                  scheduler: str = "work_sharing") -> None:
    """Accuracy vs system throughput per board, for one gate and scheduler: TwinDNN through the
    gate's operating points, the time-shared Big/Little baseline at the same points, the oracle
    gate, each twin alone and the original alone (whole device). One colour per twin."""
    boards = list(dict.fromkeys(system["board"]))
    twins = list(dict.fromkeys(system["twin"]))
    colours = dict(zip(twins, sns.color_palette("colorblind", len(twins))))
    available = [g for g in dict.fromkeys(system["gate"]) if g != "oracle"]
    shown = gate if gate in available else (available[0] if available else gate)
    fig = Figure(figsize=(5.5 * len(boards), 4.2), layout="constrained")
    axes = fig.subplots(1, len(boards), squeeze=False)
    for ax, board in zip(axes[0], boards):
        d = system[(system["board"] == board) & (system["scheduler"] == scheduler)]
        for twin, g in d.groupby("twin", sort=False):
            c = colours[twin]
            ok = g[g["fits"].astype(bool)]
            points = ok[ok["gate"] == shown].sort_values("forwarded_fraction")
            ax.plot(points["twindnn_fps"], points["twindnn_accuracy"], "o-", color=c, label=f"TwinDNN {twin}")
            _interval_bars(ax, points, "twindnn_fps", "twindnn_accuracy", c)
            ax.plot(points["time_shared_fps"], points["cascade_accuracy"], "s--", color=c, alpha=0.6,
                    label=f"time-shared Big/Little {twin}")
            o = ok[ok["gate"] == "oracle"]
            ax.plot(o["twindnn_fps"], o["twindnn_accuracy"], "*", ms=13, color=c, label=f"oracle gate {twin}")
            ax.plot(g["twin_alone_fps"].iloc[:1], g["twin_accuracy"].iloc[:1], "v", ms=8, color=c,
                    label=f"twin {twin} alone")
        if len(d) and np.isfinite(d["original_alone_fps"].iloc[0]):
            ax.plot(d["original_alone_fps"].iloc[:1], d["original_accuracy"].iloc[:1], "^k", ms=8,
                    label="original alone (a): best DSP + LUT mix")
        if len(d) and "original_dsp_alone_fps" in d and np.isfinite(d["original_dsp_alone_fps"].iloc[0]):
            ax.plot(d["original_dsp_alone_fps"].iloc[:1], d["original_accuracy"].iloc[:1], "^", ms=8, mfc="none",
                    color="k", label="original alone, DSP designs only")
        _nothing_fits(ax, d)
        ax.set_xscale("log")
        _label(ax, "system throughput (frames/s, FINN+ estimate)", "test accuracy",
               f"{board}: {scheduler}, gate {shown}, points = recovery targets", legend_size=7)
    save_figure(fig, out_png, dpi=120)


BASELINE_STYLES = {  # one marker per baseline; one colour per twin; one line style per scheduler
    "original_in_pair": ("o", "vs (b) same original"),
    "original_alone": ("s", "vs (a) strongest whole-device original"),
    "time_shared": ("^", "vs (c) time-shared at TwinDNN's latency"),
}
SCHEDULER_LINES = {"work_sharing": "-", "twin_first": ":"}


def paper_figure(headline: pd.DataFrame, out_png, gate: str, anchor: tuple[float, float] = (0.94, 1.90)) -> None:
    """Speed-up vs accuracy recovery per board: TwinDNN against the paper's baseline (b), the
    strongest whole-device original (a) and time-sharing (c), with the paper's claim (94 %
    recovered, 1.9x) as a star. A panel where no pair fits says so."""
    rows = headline[(headline["gate"] == gate) & headline["fits"].astype(bool)]
    boards = list(dict.fromkeys(headline["board"]))
    twins = list(dict.fromkeys(headline["twin"]))
    colours = dict(zip(twins, sns.color_palette("colorblind", len(twins))))
    fig = Figure(figsize=(6.4 * len(boards), 5.0), layout="constrained")
    axes = fig.subplots(1, len(boards), squeeze=False)
    for ax, board in zip(axes[0], boards):
        for (twin, scheduler), g in rows[rows["board"] == board].groupby(["twin", "scheduler"], sort=False):
            g = g.sort_values("accuracy_recovery")
            for base, (marker, text) in BASELINE_STYLES.items():
                ax.plot(g["accuracy_recovery"], g[f"gain_vs_{base}"], marker=marker,
                        ls=SCHEDULER_LINES.get(scheduler, "-"), color=colours[twin], ms=6,
                        alpha=1.0 if base == "original_alone" else 0.55, label=f"{twin}, {scheduler}: {text}")
            _interval_bars(ax, g, "accuracy_recovery", "gain_vs_original_alone", colours[twin])
        ax.plot(*anchor, "*", color="k", ms=14, label="paper: 94 % recovered, +90 % throughput")
        ax.axhline(1.0, color="grey", lw=0.8)
        _nothing_fits(ax, headline[headline["board"] == board])
        _label(ax, "accuracy recovery (test)", "throughput speed-up (FINN+ estimate)", f"{board}: gate {gate}",
               legend_size=8)
    save_figure(fig, out_png, dpi=120)


def _nothing_fits(ax, rows: pd.DataFrame) -> None:
    """Say so in a panel where no pair fits the budget (rather than leave it empty)."""
    if len(rows) and not rows["fits"].astype(bool).any():
        limit = str(rows["pair_limit"].dropna().iloc[0]) if rows["pair_limit"].notna().any() else "does not fit"
        ax.text(0.5, 0.5, "no twin + original pair fits the budget:\n" + limit[:80], transform=ax.transAxes,
                ha="center", va="center", fontsize=10, wrap=True)


def _interval_bars(ax, rows: pd.DataFrame, x: str, y: str, colour) -> None:
    """The points' 95 % intervals (columns ``<x>_ci95_low`` ...), where the table has them."""
    if f"{x}_ci95_low" not in rows or f"{y}_ci95_low" not in rows:
        return
    def spans(c):
        return [np.maximum(rows[c] - rows[f"{c}_ci95_low"], 0), np.maximum(rows[f"{c}_ci95_high"] - rows[c], 0)]

    ax.errorbar(rows[x], rows[y], xerr=spans(x), yerr=spans(y), fmt="none", ecolor=colour, alpha=0.5,
                elinewidth=0.8, capsize=2)


def _label(ax, xlabel: str, ylabel: str, title: str, legend_size: int) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
