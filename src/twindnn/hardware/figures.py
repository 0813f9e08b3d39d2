"""The FPGA figures: accuracy against system throughput, and the paper's speed-up against recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

from ..cascade import DEFAULT_GATE
from ..plotting import save_figure, twin_colours

# accuracy_vs_throughput_figure: one marker per system; the colour is the twin's (black: the original)
SYSTEM_STYLES = {
    "twindnn": ("o", "-", "TwinDNN through the gate's operating points"),
    "time_shared": ("s", "--", "time-shared Big/Little at the same points"),
    "oracle": ("*", "none", "oracle gate (forwards exactly the twin's errors)"),
    "twin_alone": ("v", "none", "the twin alone (whole device)"),
}


def accuracy_vs_throughput_figure(system: pd.DataFrame, out_png, gate: str = DEFAULT_GATE,
                                  scheduler: str = "work_sharing") -> None:
    """Accuracy vs system throughput per board, for one gate and scheduler: TwinDNN through the
    gate's operating points (labelled with their targets), the time-shared Big/Little baseline at
    the same points, the oracle gate, each twin alone and the original alone (whole device: the
    strongest mix (a), and its DSP designs only). Colour: the twin; marker: the system."""
    boards = list(dict.fromkeys(system["board"]))
    twins = list(dict.fromkeys(system["twin"]))
    colours = twin_colours(twins)
    available = [g for g in dict.fromkeys(system["gate"]) if g != "oracle"]
    shown = gate if gate in available else (available[0] if available else gate)
    fig = Figure(figsize=(6.4 * len(boards), 5.6), layout="constrained")
    axes = fig.subplots(1, len(boards), squeeze=False)
    for ax, board in zip(axes[0], boards):
        d = system[(system["board"] == board) & (system["scheduler"] == scheduler)]
        for twin, g in d.groupby("twin", sort=False):
            c = colours[twin]
            ok = g[g["fits"].astype(bool)]
            points = ok[ok["gate"] == shown].sort_values("forwarded_fraction")
            marker, line, _ = SYSTEM_STYLES["twindnn"]
            ax.plot(points["twindnn_fps"], points["twindnn_accuracy"], marker=marker, ls=line, color=c, ms=7)
            _interval_bars(ax, points, "twindnn_fps", "twindnn_accuracy", c)
            _target_labels(ax, points, "twindnn_fps", "twindnn_accuracy", c)
            marker, line, _ = SYSTEM_STYLES["time_shared"]
            ax.plot(points["time_shared_fps"], points["cascade_accuracy"], marker=marker, ls=line, color=c,
                    alpha=0.6, ms=6)
            o = ok[ok["gate"] == "oracle"]
            ax.plot(o["twindnn_fps"], o["twindnn_accuracy"], SYSTEM_STYLES["oracle"][0], ms=14, color=c)
            ax.plot(g["twin_alone_fps"].iloc[:1], g["twin_accuracy"].iloc[:1], SYSTEM_STYLES["twin_alone"][0], ms=9,
                    color=c)
        if len(d) and np.isfinite(d["original_alone_fps"].iloc[0]):
            ax.plot(d["original_alone_fps"].iloc[:1], d["original_accuracy"].iloc[:1], "^k", ms=9)
        if len(d) and "original_dsp_alone_fps" in d and np.isfinite(d["original_dsp_alone_fps"].iloc[0]):
            ax.plot(d["original_dsp_alone_fps"].iloc[:1], d["original_accuracy"].iloc[:1], "^", ms=9, mfc="none",
                    color="k")
        _nothing_fits(ax, d)
        ax.set_xscale("log")
        _label(ax, "system throughput (frames/s, FINN+ estimate)", "test accuracy",
               f"{board}: {scheduler}, gate {shown}\n(TwinDNN points labelled with their targets)")
    handles = [Line2D([], [], color=colours[t], lw=6, label=f"twin {t}") for t in twins]
    handles += [Line2D([], [], color="grey", marker=m, ls=ls, ms=9, label=text) for m, ls, text in SYSTEM_STYLES.values()]
    handles += [Line2D([], [], color="k", marker="^", ls="none", ms=9, label="original alone (a): best DSP + LUT mix"),
                Line2D([], [], color="k", marker="^", mfc="none", ls="none", ms=9,
                       label="original alone, DSP designs only")]
    fig.legend(handles=handles, loc="outside lower center", fontsize=11, ncols=3, frameon=False)
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
    recovered, 1.9x) as a star. Colour: the twin; marker: the baseline; line: the scheduler. The
    points against (a) carry their recovery targets; a panel where no pair fits says so."""
    rows = headline[(headline["gate"] == gate) & headline["fits"].astype(bool)]
    boards = list(dict.fromkeys(headline["board"]))
    twins = list(dict.fromkeys(headline["twin"]))
    colours = twin_colours(twins)
    schedulers = list(dict.fromkeys(rows["scheduler"])) or list(SCHEDULER_LINES)
    fig = Figure(figsize=(6.4 * len(boards), 5.6), layout="constrained")
    axes = fig.subplots(1, len(boards), squeeze=False)
    for ax, board in zip(axes[0], boards):
        on_board = rows[rows["board"] == board]
        for (twin, scheduler), g in on_board.groupby(["twin", "scheduler"], sort=False):
            g = g.sort_values("accuracy_recovery")
            for base, (marker, _) in BASELINE_STYLES.items():
                ax.plot(g["accuracy_recovery"], g[f"gain_vs_{base}"], marker=marker,
                        ls=SCHEDULER_LINES.get(scheduler, "-"), color=colours[twin], ms=7,
                        alpha=1.0 if base == "original_alone" else 0.5)
            _interval_bars(ax, g, "accuracy_recovery", "gain_vs_original_alone", colours[twin])
            if scheduler == schedulers[0]:
                _target_labels(ax, g, "accuracy_recovery", "gain_vs_original_alone", colours[twin])
        ax.plot(*anchor, "*", color="k", ms=16)
        ax.axhline(1.0, color="grey", lw=0.8)
        if len(on_board):
            _log_gain_axis(ax)
            _recovery_axis(ax, on_board, anchor[0])
        _nothing_fits(ax, headline[headline["board"] == board])
        _label(ax, "accuracy recovery (test)", "throughput speed-up (FINN+ estimate)",
               f"{board}: gate {gate}\n(labels: targets of the {schedulers[0]} points vs (a))")
    handles = [Line2D([], [], color=colours[t], lw=6, label=f"twin {t}") for t in twins]
    handles += [Line2D([], [], color="k", marker=m, ls="none", ms=8, label=text)
                for m, text in BASELINE_STYLES.values()]
    handles += [Line2D([], [], color="k", ls=SCHEDULER_LINES.get(sc, "-"), label=f"scheduler {sc}")
                for sc in schedulers]
    handles.append(Line2D([], [], color="k", marker="*", ls="none", ms=14,
                          label="paper: 94 % recovered, +90 % throughput"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=11, ncols=3, frameon=False)
    save_figure(fig, out_png, dpi=120)


def _recovery_axis(ax, rows: pd.DataFrame, anchor: float) -> None:
    """The recovery axis spans the points (and the paper's star), not their intervals: a twin within
    a point of the original has recovery intervals many times wider than the points' spread, which
    would squeeze every point into one spot. The panel says where an interval runs past the axis."""
    values = pd.concat([rows["accuracy_recovery"].dropna(), pd.Series([anchor, 1.0])])
    low, high = float(values.min()), float(values.max())
    pad = max(0.05, 0.08 * (high - low))
    ax.set_xlim(low - pad, high + pad)
    if "accuracy_recovery_ci95_low" in rows and (
            (rows["accuracy_recovery_ci95_low"] < low - pad).any()
            or (rows["accuracy_recovery_ci95_high"] > high + pad).any()):
        ax.text(0.01, 0.01, "some 95 % intervals run past the axis (hw_headline.csv has them)",
                transform=ax.transAxes, fontsize=9, ha="left", va="bottom", color="dimgrey")


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


def _target_labels(ax, rows: pd.DataFrame, x: str, y: str, colour) -> None:
    """Each operating point labelled with its recovery target; points that coincide share a label."""
    spots: dict[tuple, list[str]] = {}
    for _, r in rows.iterrows():
        if np.isfinite(r[x]) and np.isfinite(r[y]) and "target_value" in r and not (
                "gate" in r and r["gate"] == "oracle"):
            key = (float(f"{float(r[x]):.2g}"), float(f"{float(r[y]):.2g}"))
            spots.setdefault(key, [float(r[x]), float(r[y])]).append(_target_text(r))
    for px, py, *targets in spots.values():
        ax.annotate(", ".join(dict.fromkeys(targets)), (px, py), textcoords="offset points", xytext=(4, 5),
                    fontsize=10, color=colour)


def _target_text(row) -> str:
    """A recovery target as itself (0.94); an accuracy-loss target as the points it may lose (-1 pt);
    a disagreement target as its share (2 % disagree)."""
    value, kind = float(row["target_value"]), row.get("target_kind")
    if kind == "max_accuracy_loss":
        return f"-{100 * value:g} pt"
    if kind == "max_disagreement":
        return f"{100 * value:g} % disagree"
    return f"{value:g}"


def _log_gain_axis(ax) -> None:
    """A log axis for speed-ups, with plain numbers (0.5, 1, 2, 5, ...) as its ticks."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 200, 500) if low <= t <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _label(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel, fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(alpha=0.3)
