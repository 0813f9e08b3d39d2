"""One optimizer for every system on one FPGA: how many instances of which searched design of each
network to place, maximising the system's throughput with every resource within budget.

Every system (TwinDNN under each scheduler, the original alone, the twin alone) is the same small
integer linear program over the same searched designs (:mod:`twindnn.hardware.search`) and the
same budget, solved exactly by SciPy's ``milp`` (HiGHS):

- variables: ``n_i >= 0`` instances of each design ``i`` (any mix of a network's designs, each
  with its MACs on DSPs or on LUTs), and for TwinDNN the system rate ``T``;
- resources: ``sum_i n_i (res_i + fifo_i + per_instance) + fixed <= budget`` for each of LUT,
  DSP, BRAM_18K and URAM (``res_i``: FINN+'s estimate; ``fifo_i``: the design's skip-connection
  FIFOs, which FINN+'s estimate leaves out; ``per_instance``: a stated cost of each instance's
  stream splitter and merger port; ``fixed``: the pair's dispatcher);
- rates: ``R_t = sum_twin n_i fps_i``, ``R_o = sum_original n_i fps_i``;
- work sharing (:func:`twindnn.system.model.work_sharing_fps` is exactly the minimum of two
  linear forms): ``T <= R_t (1 - f) + R_o`` and ``f T <= R_o``; twin first: ``T <= R_t`` and
  ``f T <= R_o``; a network alone: ``T = R``.

The solution names what limits it (:func:`_limit`): the resources that leave no room for one more
instance of any design of the pools, the instance cap where one is set and binds, or for a pair
the scheduler's balance.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp

from ..system.model import SCHEDULERS, system_fps
from .boards import RESOURCES

ALONE = "alone"  # the objective of one network on its own: its summed rate
TIME_LIMIT_S = 60.0  # per program; instances of the size of a board's designs solve in well under a second


FIFO_PREFIX = "fifo_"  # a design's skip-connection FIFOs (twindnn.hardware.fifo), beside FINN+'s own figures


def instance_resources(design, per_instance: dict | None = None) -> dict:
    """One instance of a design: FINN+'s figures, its estimated skip FIFOs (``fifo_<resource>``
    columns, where the table has them) and the stated per-instance cost."""
    extra = per_instance or {}

    def fifo(r):
        value = design.get(FIFO_PREFIX + r, 0.0)
        return 0.0 if value is None or pd.isna(value) else float(value)

    return {r: float(design[r]) + fifo(r) + float(extra.get(r, 0.0)) for r in RESOURCES}


def _needs(designs: pd.DataFrame, per_instance: dict | None) -> np.ndarray:
    """(designs x RESOURCES) resources of one instance of each design (:func:`instance_resources`)."""
    rows = [instance_resources(d, per_instance) for _, d in designs.iterrows()]
    return np.array([[row[r] for r in RESOURCES] for row in rows], dtype=np.float64).reshape(len(rows), len(RESOURCES))


def solve(pools: dict[str, pd.DataFrame], cap: dict, objective: str = ALONE, forwarded_fraction: float = 0.0,
          max_instances: int | None = None, per_instance: dict | None = None, fixed: dict | None = None) -> dict | None:
    """The best placement of the designs in ``pools`` ({network: designs table}) within ``cap``.

    ``objective``: :data:`ALONE` (one pool: its summed rate) or a scheduler of
    :data:`twindnn.system.model.SCHEDULERS` (pools ``twin`` and ``original``, at least one
    instance of each). ``max_instances`` caps the instances of each network (None: the budget
    limits). Returns None when nothing fits, else {"fps", "counts": {network: {design: n}},
    "rates": {network: R}, "resources": {r: used}, "limit"}.
    """
    names = list(pools)
    if objective == ALONE and len(names) != 1:
        raise ValueError(f"objective {ALONE!r} takes one pool, got {names}")
    if objective != ALONE and (objective not in SCHEDULERS or sorted(names) != ["original", "twin"]):
        raise ValueError(f"objective {objective!r}: use {ALONE!r} or one of {list(SCHEDULERS)} with pools "
                         "'twin' and 'original'")
    f = float(forwarded_fraction)
    fixed = {r: float((fixed or {}).get(r, 0.0)) for r in RESOURCES}
    left = np.array([float(cap[r]) - fixed[r] for r in RESOURCES])
    if np.any(left < -1e-9):
        return None
    blocks = {n: pools[n].reset_index(drop=True) for n in names}
    needs = {n: _needs(blocks[n], per_instance) for n in names}
    fps = {n: blocks[n]["estimated_throughput_fps"].astype(float).to_numpy() for n in names}
    sizes = [len(blocks[n]) for n in names]
    offsets = dict(zip(names, np.cumsum([0, *sizes[:-1]]).tolist()))
    n_var = sum(sizes) + 1  # the design counts, then the system rate T
    scale = max([float(fps[n].max()) for n in names if len(fps[n])] + [1.0])

    # upper bounds: what the budget allows of each design alone (and the instance cap)
    upper = np.zeros(n_var)
    for n in names:
        for i, need in enumerate(needs[n]):
            if not np.any(need > 0):
                raise ValueError(f"design {blocks[n]['design'].iloc[i]} of {n} needs no resources: "
                                 "the budget cannot bound its instances")
            k = min(math.floor((left[j] + 1e-9) / need[j]) for j in range(len(RESOURCES)) if need[j] > 0)
            upper[offsets[n] + i] = max(0, k if max_instances is None else min(k, int(max_instances)))
    upper[-1] = np.inf

    rows, lo, hi = [], [], []

    def add(row, low, high):
        rows.append(row)
        lo.append(low)
        hi.append(high)

    for j in range(len(RESOURCES)):  # every resource within budget
        row = np.zeros(n_var)
        for n in names:
            row[offsets[n]:offsets[n] + len(blocks[n])] = needs[n][:, j]
        add(row, -np.inf, left[j])
    for n in names:
        count = np.zeros(n_var)
        count[offsets[n]:offsets[n] + len(blocks[n])] = 1.0
        if max_instances is not None:
            add(count, -np.inf, float(max_instances))
        if objective != ALONE:
            add(count, 1.0, np.inf)  # a pair has at least one instance of each network

    def rate(n, weight=1.0):
        row = np.zeros(n_var)
        row[offsets[n]:offsets[n] + len(blocks[n])] = weight * fps[n] / scale
        return row

    t = np.zeros(n_var)
    t[-1] = 1.0
    if objective == ALONE:
        add(t - rate(names[0]), -np.inf, 0.0)
    else:
        if objective == "work_sharing":
            add(t - rate("twin", 1.0 - f) - rate("original"), -np.inf, 0.0)
        else:  # twin_first
            add(t - rate("twin"), -np.inf, 0.0)
        add(f * t - rate("original"), -np.inf, 0.0)
    integrality = np.ones(n_var)
    integrality[-1] = 0
    res = milp(-t, constraints=LinearConstraint(np.array(rows), np.array(lo), np.array(hi)),
               integrality=integrality, bounds=Bounds(np.zeros(n_var), upper),
               options={"mip_rel_gap": 1e-9, "presolve": True, "time_limit": TIME_LIMIT_S})
    if res.x is None or res.status not in (0, 1):  # 1: the time limit, with a feasible solution
        return None
    x = np.round(res.x[:-1]).astype(int)
    counts = {n: {int(blocks[n]["design"].iloc[i]): int(x[offsets[n] + i]) for i in range(len(blocks[n]))
                  if x[offsets[n] + i] > 0} for n in names}
    rates = {n: float(sum(x[offsets[n] + i] * fps[n][i] for i in range(len(blocks[n])))) for n in names}
    if objective == ALONE:
        value = rates[names[0]]
        if value <= 0:
            return None
    else:
        value = float(system_fps(rates["twin"], rates["original"], f, objective))
    used = {r: fixed[r] + float(sum(x[offsets[n]:offsets[n] + len(blocks[n])] @ needs[n][:, j] for n in names))
            for j, r in enumerate(RESOURCES)}
    out = {"fps": value, "counts": counts, "rates": rates, "resources": used}
    out["limit"] = _limit(out, blocks, needs, cap, max_instances, objective) + (
        "" if res.status == 0 else " (HiGHS time limit: feasible, not proven optimal)")
    return out


def _limit(solution: dict, blocks: dict, needs: dict, cap: dict, max_instances: int | None,
           objective: str = ALONE) -> str:
    """What stops one more instance of any design of the pools: for each design, the resource it
    would overrun the most (relative to what is left); their union, with how full each is. Also
    the instance cap where it binds, and for a pair the scheduler's balance (a design still fits,
    but more of it would not raise the system rate)."""
    used = solution["resources"]
    left = {r: float(cap[r]) - used[r] for r in RESOURCES}
    tightest, free = set(), False
    for n in blocks:
        capped = max_instances is not None and sum(solution["counts"][n].values()) >= max_instances
        for need in needs[n]:
            over = {r: need[j] / max(left[r], 1e-12) for j, r in enumerate(RESOURCES) if need[j] > left[r] + 1e-9}
            if over:
                tightest.add(max(over, key=over.get))
            free |= not over and not capped
    parts = []
    if max_instances is not None and any(sum(c.values()) >= max_instances for c in solution["counts"].values()):
        parts.append(f"hardware.max_replicas ({max_instances}) binds")
    if tightest:
        parts.append("budget full: " + ", ".join(f"{r} {used[r] / cap[r]:.0%}" if cap[r] > 0 else f"{r} (none)"
                                                 for r in RESOURCES if r in tightest) + " of the budget")
    if free and objective != ALONE:
        parts.append("scheduler balance (more instances would not raise the system rate)")
    return "; ".join(parts) or "budget full"


def mix_text(counts: dict, designs: pd.DataFrame) -> str:
    """``3x d5 (auto) + 1x d17 (lut)``: a network's instances per design, with each design's MAC resource."""
    macs = dict(zip(designs["design"].astype(int), designs["mac"])) if "mac" in designs else {}
    return " + ".join(f"{n}x d{d}" + (f" ({macs[d]})" if d in macs else "") for d, n in sorted(counts.items()))


def counts_json(counts: dict) -> str:
    """A mix as JSON ({design: instances}), so a table row's resources can be recomputed from it."""
    return json.dumps({str(d): int(n) for d, n in sorted(counts.items())})


def main_design(counts: dict, designs: pd.DataFrame) -> int:
    """The design of a mix that contributes the most throughput (the one the workflow builds)."""
    fps = dict(zip(designs["design"].astype(int), designs["estimated_throughput_fps"].astype(float)))
    return max(counts, key=lambda d: (counts[d] * fps[d], -d))


def recompute_resources(counts: dict, designs: pd.DataFrame, per_instance: dict | None = None) -> dict:
    """The resources of a mix, recomputed from its design counts and the designs' own figures."""
    by_id = designs.set_index(designs["design"].astype(int))
    per = {int(d): instance_resources(by_id.loc[int(d)], per_instance) for d in counts}
    return {r: float(sum(n * per[int(d)][r] for d, n in counts.items())) for r in RESOURCES}
