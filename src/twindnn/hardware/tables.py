"""Tables and the figure of the FPGA half. Every figure carries ``source``: "FINN+ estimate"
unless a board measured it ("measured on board")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import ORIGINAL_NETWORK, TWIN_PREFIX
from ..system.model import SOURCE_ESTIMATE, SOURCE_MEASURED
from ..table_io import markdown_table
from .boards import RESOURCES, load_board

# The search's figures that a build must reproduce exactly (one estimate path).
CHECKED = ("max_cycles", "critical_path_cycles", *RESOURCES)


class SearchBuildMismatch(RuntimeError):
    """A build reported other figures than the search that chose its design."""


def searched_designs(design_points: list) -> dict:
    """{(board, twin, role): the search's figures of the design built for that role} from ``_design_points.json`` files."""
    out = {}
    for path in design_points:
        points = json.loads(Path(path).read_text())
        for role, searched in points["roles"].items():
            out[(points["board"], points["twin"], role)] = {**searched, "pair_fits": points["design_point"] is not None}
    return out


def built_design_text(role: str, design: dict) -> str:
    """What a build of ``role`` is: which design of the search, and why that one."""
    if role == "original_alone":
        return "the main design of the strongest original-alone mix (a)"
    if design.get("pair_fits", True):
        return "a design of the pair at the design point"
    return ("the network's slowest design: no twin + original pair fits the budget, so this build only "
            "shows by how much (the search's own figures are in hw_headline)")


def check_builds_match_search(builds: dict, searched: dict) -> None:
    """Every built design has exactly the figures the search computed for it (else raise)."""
    for key, design in searched.items():
        built = builds[key]
        diff = {c: (design[c], built[c]) for c in CHECKED if float(design[c]) != float(built[c])}
        if diff:
            raise SearchBuildMismatch(f"{key}: the FINN+ build reports other figures than the search "
                                      f"(search, build): {diff}")


def check_joint_build(builds: dict, pair_jsons: list) -> dict:
    """{(board, twin): joint resources} of the one-design (multi-DNN Parallel) builds; raises if a
    joint build's resources differ from its two single builds' sum (one instance each)."""
    joint = {}
    for path in pair_jsons:
        est = json.loads(Path(path).read_text())
        board, twin, _ = Path(path).stem.split("__")
        total = {r: builds[(board, twin, "twin")][r] + builds[(board, twin, "original")][r] for r in RESOURCES}
        diff = {r: (est[r], total[r]) for r in RESOURCES if float(est[r]) != float(total[r])}
        if diff:
            raise SearchBuildMismatch(f"{board}/{twin}: the joint FINN+ Parallel build differs from the sum of the "
                                      f"single builds (joint, sum): {diff}")
        joint[(board, twin)] = est
    return joint


def resource_table(build_jsons: list, design_points: list, utilization: float,
                   pair_jsons: list = ()) -> pd.DataFrame:
    """Per board, twin and built network (and the co-located pair): resources of one instance, the
    replicas the design uses, their total, and whether it fits ``utilization`` of the board.

    ``pair_jsons``: the pair built as one design (FINN+ multi-DNN Parallel), checked to equal the
    sum of the single builds; the co-located rows say so (``joint_build``)."""
    builds, rows = {}, []
    for path in build_jsons:
        est = json.loads(Path(path).read_text())
        board, twin, role = Path(path).stem.split("__")
        builds[(board, twin, role)] = est
    searched = searched_designs(design_points)
    check_builds_match_search(builds, searched)
    joint = check_joint_build(builds, list(pair_jsons))
    for (board, twin, role), est in builds.items():
        design = searched.get((board, twin, role), {})
        # instances of the built design in its role's mix (the rest of a mix: its search figures, hw_headline)
        k = int(design["mix"].get(str(design["design"]), 1)) if "mix" in design else int(design.get("replicas", 1))
        mix = design.get("mix", {})
        row = {"board": board, "twin": twin, "network": role, "replicas": k, "mac": est.get("mac", ""),
               "mix": " + ".join(f"{n}x d{d}" for d, n in mix.items()),
               "estimated_throughput_fps": k * est["estimated_throughput_fps"],
               "estimated_latency_ms": est["estimated_latency_ms"], "clock_mhz": est["clock_mhz"],
               "bottleneck_layer": est["bottleneck_layer"], "DSP_finn": k * est["DSP_finn"],
               "zero_estimated": est["zero_estimated"], "built": built_design_text(role, design)}
        for r in RESOURCES:
            row[f"{r}_per_instance"] = est[r]
            row[r] = k * est[r]
            row[f"{r}_budget"] = est["budget"][r]
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    summed = []
    for (board, twin), g in df[df["network"].isin(["twin", "original"])].groupby(["board", "twin"]):
        row = {"board": board, "twin": twin, "network": "co-located (twin + original)", "replicas": np.nan,
               "estimated_throughput_fps": np.nan, "estimated_latency_ms": np.nan,
               "clock_mhz": g["clock_mhz"].iloc[0], "DSP_finn": g["DSP_finn"].sum(),
               "zero_estimated": "; ".join(dict.fromkeys(g["zero_estimated"])),
               "joint_build": "FINN+ multi-DNN Parallel build of one instance each: equal to the sum"
               if (board, twin) in joint else "sum of the single builds"}
        for r in RESOURCES:
            row[r] = g[r].sum()
            row[f"{r}_budget"] = g[f"{r}_budget"].iloc[0]
        summed.append(row)
    df = pd.concat([df, pd.DataFrame(summed)], ignore_index=True)
    for r in RESOURCES:
        with np.errstate(divide="ignore", invalid="ignore"):
            df[f"{r}_utilization"] = np.where(df[f"{r}_budget"] > 0, df[r] / df[f"{r}_budget"], np.nan)
    df["budget_utilization"] = utilization
    df["fits_budget"] = [all(row[r] <= utilization * row[f"{r}_budget"] + 1e-9 for r in RESOURCES) for _, row in df.iterrows()]
    df["note"] = ("DSP: RTL matrix units counted with the lanes per DSP the RTL packs (DSP_finn: FINN+'s count); "
                  "zero_estimated: node types FINN+ estimates at 0; replicas: instances of the built design in "
                  "its role's mix (mix: the whole mix, by design id; its other designs carry the search's "
                  "figures, see hw_headline); the stated splitter and dispatcher costs are in hw_headline's totals")
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
             "accuracy": np.nan, "built": r.get("built", ""), "source": SOURCE_ESTIMATE} for _, r in est.iterrows()]
    for path in board_jsons:
        m = json.loads(Path(path).read_text())
        parts = Path(path).stem.split("__")
        if parts[2] == "pair":  # the host loop over both accelerators, beside the model's prediction
            rows.append({"board": parts[0], "twin": parts[1], "network": f"pair ({m['scheduler']} host loop)",
                         "throughput_fps": m["measured_throughput_fps"], "latency_ms": np.nan,
                         "clock_mhz": m.get("fclk_mhz_actual", np.nan), "accuracy": m["accuracy"],
                         "predicted_throughput_fps": m["predicted_simulated_throughput_fps"],
                         "predicted_accuracy": m["predicted_simulated_accuracy"], "source": SOURCE_MEASURED})
            continue
        rows.append({"board": parts[0], "twin": parts[1], "network": parts[2],
                     "throughput_fps": m["measured_throughput_fps"], "latency_ms": np.nan,
                     "clock_mhz": m["clock_mhz"], "accuracy": m.get("accuracy", np.nan), "source": SOURCE_MEASURED})
    table = pd.DataFrame(rows)
    checks = graph_checks(list(check_csvs))
    if table.empty or checks.empty:
        return table
    table["exported"] = np.where(table["network"] == "twin", TWIN_PREFIX + table["twin"], ORIGINAL_NETWORK)
    checks = checks.rename(columns={"images": "graph_check_images",
                                    "prediction_agreement": "graph_agreement_with_model",
                                    "qonnx_accuracy": "model_accuracy_on_check",
                                    "graph_accuracy": "graph_accuracy_on_check"})
    keep = ["exported", "graph_check_images", "graph_agreement_with_model", "model_accuracy_on_check",
            "graph_accuracy_on_check"]
    table = table.merge(checks[[c for c in keep if c in checks.columns]], on="exported", how="left")
    return table.drop(columns="exported")


HEADLINE = ["board", "twin", "gate", "selection", "target_kind", "target_value", "scheduler",
            "forwarded_fraction", "forwarded_fraction_ci95_low", "forwarded_fraction_ci95_high",
            "original_accuracy", "twin_accuracy", "twindnn_accuracy", "twindnn_accuracy_ci95_low",
            "twindnn_accuracy_ci95_high", "accuracy_recovery", "accuracy_recovery_ci95_low",
            "accuracy_recovery_ci95_high", "original_direct_share",
            "twindnn_fps", "twindnn_fps_ci95_low", "twindnn_fps_ci95_high", "twin_mix", "original_mix",
            "twin_replicas", "original_replicas", "pair_limit",
            # (a) the strongest whole-device original: the optimizer's best mix of all its designs
            "original_alone_fps", "gain_vs_original_alone", "gain_vs_original_alone_ci95_low",
            "gain_vs_original_alone_ci95_high", "original_alone_mix", "original_alone_replicas",
            "original_alone_limit", "original_bound_fps", "original_alone_bound_share",
            # (a, DSP) the same from the DSP designs only (what a DSP-only flow builds)
            "original_dsp_alone_fps", "gain_vs_original_dsp_alone", "gain_vs_original_dsp_alone_ci95_low",
            "gain_vs_original_dsp_alone_ci95_high", "original_dsp_alone_mix", "original_dsp_alone_limit",
            # (b) the paper's: the pair's own original instances, alone
            "original_in_pair_fps", "gain_vs_original_in_pair", "gain_vs_original_in_pair_ci95_low",
            "gain_vs_original_in_pair_ci95_high",
            # (c) time-shared Big/Little at the latency budget, and its batch-to-infinity bound
            "time_shared_fps", "gain_vs_time_shared", "gain_vs_time_shared_ci95_low", "gain_vs_time_shared_ci95_high",
            "time_shared_batch", "time_shared_latency_budget_ms", "time_shared_meets_latency", "time_shared_limit",
            "time_shared_switch_ms", "time_shared_bound_fps", "gain_vs_time_shared_bound",
            # (d) the twin alone
            "twin_alone_fps", "gain_vs_twin_alone", "twin_alone_mix", "twin_alone_limit", "twin_bound_fps",
            "twin_alone_bound_share",
            "total_LUT", "total_DSP", "total_BRAM_18K", "total_URAM", "utilization_budget", "fits",
            "sensitivity_factors", "sensitivity_fits", "sensitivity_twindnn_fps", "sensitivity_original_alone_fps",
            "sensitivity_gain_vs_original_alone",
            "simulated_inputs", "simulated_throughput_fps", "simulated_accuracy", "simulated_mean_latency_ms",
            "simulated_p99_latency_ms", "simulated_max_queue_depth", "twin_counts", "original_counts",
            "original_alone_counts", "source"]


def budget_violations(headline: pd.DataFrame) -> list[str]:
    """Headline rows called fitting whose pair is over ``utilization_budget`` of the board's budget
    in ``hardware/boards/<board>.yaml`` (the board files, not the table's own figures)."""
    problems = []
    for i, row in headline[headline["fits"].astype(bool)].iterrows():
        board = load_board(row["board"])
        for r in RESOURCES:
            cap = float(row["utilization_budget"]) * float(board["resources"].get(r, 0))
            if not float(row[f"total_{r}"]) <= cap + 1e-9:
                problems.append(f"row {i} ({row['board']}, {row['twin']}, {row['gate']}, {row['scheduler']}): "
                                f"{r} {row[f'total_{r}']:.0f} > {cap:.0f}")
    return problems


def headline_table(system: pd.DataFrame) -> pd.DataFrame:
    """TwinDNN and its four baselines per board, twin, operating point and scheduler: the headline
    columns of the system tables (:func:`twindnn.hardware.colocate.system_rows`)."""
    return system.reindex(columns=HEADLINE)


PAPER_COLUMNS = {
    "board": "board", "twin": "twin", "scheduler": "scheduler", "selection": "threshold rule",
    "target_value": "recovery target",
    "original_accuracy": "original acc.", "twin_accuracy": "twin acc.", "twindnn_accuracy": "TwinDNN acc.",
    "accuracy_recovery": "recovery", "forwarded_fraction": "forwarded", "original_in_pair_fps": "original (b) FPS",
    "original_alone_fps": "original alone (a) FPS", "original_dsp_alone_fps": "original alone, DSP only FPS",
    "twindnn_fps": "TwinDNN FPS",
    "gain_vs_original_in_pair": "speed-up vs (b)", "gain_vs_original_alone": "speed-up vs (a)",
    "gain_vs_original_dsp_alone": "speed-up vs (a, DSP)",
    "gain_vs_time_shared": "speed-up vs time-shared (c) at TwinDNN's latency",
    "gain_vs_time_shared_bound": "speed-up vs time-shared bound (c, any batch)",
    "simulated_throughput_fps": "simulated FPS",
}


def paper_table(headline: pd.DataFrame, gate: str) -> pd.DataFrame:
    """The paper's table: per board, twin and scheduler, the gate's operating points with original,
    twin and TwinDNN accuracy, recovery, forwarded share, throughput and speed-ups over the
    baselines; ``source`` says where each figure comes from."""
    rows = headline[(headline["gate"] == gate) & headline["fits"].astype(bool)]
    columns = dict(PAPER_COLUMNS)
    for key, label in PAPER_COLUMNS.items():
        for end in ("low", "high"):
            if f"{key}_ci95_{end}" in rows:
                columns[f"{key}_ci95_{end}"] = f"{label} ci95 {end}"
    table = rows[[c for c in columns if c in rows]].rename(columns=columns).reset_index(drop=True)
    table["source"] = ("accuracies: test split (cascade at val-chosen thresholds, mixed per scheduler), 95 % "
                       "intervals over test images; FPS: FINN+ estimates (simulated: replay of the test split), "
                       "their intervals from the forwarded share's")
    return table


def _or_dash(fmt):
    """``fmt``, with "n/a" for a missing figure (a baseline that cannot meet its constraint)."""
    return lambda v: "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt(v)


def paper_markdown(table: pd.DataFrame, gate: str) -> str:
    """The paper table as Markdown, percentages, speed-ups and FPS formatted for reading."""
    shown = table.drop(columns="source").copy()
    for c in list(shown.columns):
        if " ci95 " in c:
            continue
        if c.endswith(("acc.", "recovery", "forwarded")):
            fmt = "{:.1%}".format
        elif c.startswith("speed-up"):
            fmt = "{:.2f}x".format
        elif c.endswith("FPS"):
            fmt = "{:,.0f}".format
        else:
            continue
        fmt = _or_dash(fmt)
        if f"{c} ci95 low" in shown:  # the value and its 95 % interval in one cell
            low, high = shown.pop(f"{c} ci95 low"), shown.pop(f"{c} ci95 high")
            shown[c] = [fmt(v) if fmt(v) == "n/a" else f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]"
                        for v, lo, hi in zip(shown[c], low, high)]
        else:
            shown[c] = shown[c].map(fmt)
    return (f"TwinDNN as the paper reports it, gate `{gate}`: (a) the strongest whole-device original (the "
            "optimizer's best mix of its DSP and LUT designs), (a, DSP) the same from DSP designs only, (b) "
            "the original instances that run in the pair, alone (the paper's baseline), (c) Big/Little "
            "time-shared at TwinDNN's latency (n/a where no batch meets it) and its bound at any batch. "
            "Brackets: 95 % intervals over the test images.\n\n" + markdown_table(shown) + f"\n\nSource: {table['source'].iloc[0] if len(table) else ''}.\n")
