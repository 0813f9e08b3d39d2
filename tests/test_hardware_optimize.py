"""The resource-matched optimizer (SciPy's milp) against brute force on small instances."""
import itertools

import numpy as np
import pandas as pd
import pytest

from twindnn.hardware.boards import RESOURCES
from twindnn.hardware.optimize import ALONE, counts_json, main_design, mix_text, recompute_resources, solve
from twindnn.system.model import system_fps


def _designs(rng, n, mac="auto"):
    rows = []
    for i in range(n):
        rows.append({"design": i, "mac": mac if i % 2 else "lut", "estimated_throughput_fps": float(rng.uniform(50, 500)),
                     "LUT": float(rng.uniform(50, 400)), "DSP": float(rng.choice([0, rng.uniform(5, 60)])),
                     "BRAM_18K": float(rng.uniform(1, 30)), "URAM": 0.0})
    return pd.DataFrame(rows)


CAP = {"LUT": 1000.0, "DSP": 100.0, "BRAM_18K": 60.0, "URAM": 0.0}


def _counts(designs, cap, extra=None):
    """Every vector of instance counts that fits ``cap`` (with ``extra`` already used)."""
    need = designs[list(RESOURCES)].to_numpy()
    used0 = np.array([(extra or {}).get(r, 0.0) for r in RESOURCES])
    top = [int(min(cap[r] // max(need[i, j], 1e-9) if need[i, j] > 0 else 99 for j, r in enumerate(RESOURCES)))
           for i in range(len(designs))]
    for n in itertools.product(*[range(t + 1) for t in top]):
        used = used0 + np.asarray(n) @ need
        if all(used[j] <= cap[r] + 1e-9 for j, r in enumerate(RESOURCES)):
            yield np.asarray(n), used


@pytest.mark.parametrize("seed", range(6))
def test_one_network_alone_equals_brute_force(seed):
    designs = _designs(np.random.default_rng(seed), 4)
    best = max(n @ designs["estimated_throughput_fps"].to_numpy() for n, _ in _counts(designs, CAP))
    got = solve({"original": designs}, CAP)
    assert got["fps"] == pytest.approx(best, rel=1e-9)
    # its resources, recomputed from its counts, fit the budget
    res = recompute_resources(got["counts"]["original"], designs)
    assert all(res[r] <= CAP[r] + 1e-9 for r in RESOURCES)
    assert res == pytest.approx(got["resources"])
    # a mix of designs is at least as fast as any one design replicated
    for i in range(len(designs)):
        alone = solve({"original": designs.iloc[[i]]}, CAP)
        assert alone is None or alone["fps"] <= got["fps"] + 1e-9


@pytest.mark.parametrize("scheduler", ["work_sharing", "twin_first"])
@pytest.mark.parametrize("seed", range(4))
def test_pair_equals_brute_force(seed, scheduler):
    rng = np.random.default_rng(100 + seed)
    twin, original = _designs(rng, 2, "lut"), _designs(rng, 3)
    f = float(rng.uniform(0.05, 0.6))
    best = 0.0
    for nt, used in _counts(twin, CAP):
        if nt.sum() == 0:
            continue
        r_t = nt @ twin["estimated_throughput_fps"].to_numpy()
        for no, _ in _counts(original, CAP, dict(zip(RESOURCES, used))):
            if no.sum() == 0:
                continue
            best = max(best, system_fps(r_t, no @ original["estimated_throughput_fps"].to_numpy(), f, scheduler))
    got = solve({"twin": twin, "original": original}, CAP, scheduler, f)
    assert got["fps"] == pytest.approx(best, rel=1e-7)
    assert got["fps"] == pytest.approx(system_fps(got["rates"]["twin"], got["rates"]["original"], f, scheduler))


def test_instance_cap_and_costs_are_respected_and_named():
    designs = pd.DataFrame([{"design": 0, "mac": "auto", "estimated_throughput_fps": 100.0, "LUT": 10.0, "DSP": 0.0,
                             "BRAM_18K": 0.0, "URAM": 0.0}])
    free = solve({"original": designs}, CAP)
    assert free["counts"] == {"original": {0: 100}} and "LUT 100%" in free["limit"]
    capped = solve({"original": designs}, CAP, max_instances=8)
    assert capped["fps"] == 800 and "max_replicas (8) binds" in capped["limit"]
    costly = solve({"original": designs}, CAP, per_instance={"LUT": 15.0})
    assert costly["counts"] == {"original": {0: 40}}  # 1000 / (10 + 15)
    assert solve({"original": designs}, {**CAP, "LUT": 5.0}) is None  # nothing fits


def test_pair_needs_both_networks_and_its_dispatcher():
    twin = pd.DataFrame([{"design": 0, "mac": "lut", "estimated_throughput_fps": 1000.0, "LUT": 400.0, "DSP": 0.0,
                          "BRAM_18K": 0.0, "URAM": 0.0}])
    orig = pd.DataFrame([{"design": 0, "mac": "auto", "estimated_throughput_fps": 100.0, "LUT": 100.0, "DSP": 50.0,
                          "BRAM_18K": 0.0, "URAM": 0.0}])
    got = solve({"twin": twin, "original": orig}, CAP, "work_sharing", 0.1)
    assert got["counts"] == {"twin": {0: 2}, "original": {0: 2}}  # LUT 1000 and DSP 100 of the budget
    assert got["fps"] == pytest.approx(system_fps(2000, 200, 0.1)) == pytest.approx(2000)
    assert solve({"twin": twin, "original": orig}, CAP, "work_sharing", 0.5, fixed={"LUT": 600.0}) is None
    with pytest.raises(ValueError, match="objective"):
        solve({"original": orig}, CAP, "work_sharing", 0.5)
    with pytest.raises(ValueError, match="one pool"):
        solve({"twin": twin, "original": orig}, CAP, ALONE)


def test_mix_text_and_main_design():
    designs = pd.DataFrame({"design": [3, 7], "mac": ["auto", "lut"], "estimated_throughput_fps": [100.0, 30.0]})
    assert mix_text({3: 1, 7: 4}, designs) == "1x d3 (auto) + 4x d7 (lut)"
    assert main_design({3: 1, 7: 4}, designs) == 7
    assert counts_json({7: 4, 3: 1}) == '{"3": 1, "7": 4}'


def test_limit_names_every_resource_that_blocks_a_design_and_no_unused_one():
    # A is blocked by LUT, B by DSP: both are named; BRAM and URAM (used by neither) are not
    designs = pd.DataFrame([
        {"design": 0, "mac": "lut", "estimated_throughput_fps": 100.0, "LUT": 60.0, "DSP": 1.0, "BRAM_18K": 0.0,
         "URAM": 0.0},
        {"design": 1, "mac": "auto", "estimated_throughput_fps": 100.0, "LUT": 1.0, "DSP": 6.0, "BRAM_18K": 0.0,
         "URAM": 0.0}])
    cap = {"LUT": 100.0, "DSP": 10.0, "BRAM_18K": 10.0, "URAM": 0.0}
    got = solve({"original": designs}, cap)
    assert "LUT" in got["limit"] and "DSP" in got["limit"]
    assert "BRAM" not in got["limit"] and "URAM" not in got["limit"] and "balance" not in got["limit"]
    # a pair whose rate the forwarded share caps: room is left, and it says the scheduler balances it
    twin = designs.iloc[[0]].assign(estimated_throughput_fps=1000.0, LUT=10.0, DSP=0.0)
    orig = designs.iloc[[1]].assign(LUT=10.0)
    pair = solve({"twin": twin, "original": orig}, cap, "twin_first", 0.5)
    assert pair["counts"]["original"] == {1: 1} and "balance" in pair["limit"]


def test_resource_bound_splits_layers_between_dsps_and_luts():
    from twindnn.hardware.bounds import merge_costs, resource_bound

    # layer a is cheap on DSPs, b on LUTs: one resource for both allows 10 / 150 or 1000 / 11000 frames/s;
    # a on all the DSPs (0.2 frames/s) with the rest of a and all of b on the LUTs:
    # 100 * 100 * (R - 0.2) + 100 * 10 * R <= 1000  ->  R = 3 / 11
    costs = [{"layer": "a", "macs": 100.0, "dsp_per_lane": 0.5, "lut_per_lane": 100.0},
             {"layer": "b", "macs": 100.0, "dsp_per_lane": 1.0, "lut_per_lane": 10.0}]
    got = resource_bound(costs, {"DSP": 10.0, "LUT": 1000.0}, clock_mhz=1e-6)
    assert got["bound_dsp_fps"] == pytest.approx(10 / 150) and got["bound_lut_fps"] == pytest.approx(1000 / 11000)
    assert got["bound_fps"] == pytest.approx(3 / 11) and got["bound_fps"] > got["bound_dsp_fps"] + got["bound_lut_fps"]
    # the cheapest lane of each resource over the graphs of two MAC choices, matched by position
    rtl = [dict(c, lut_per_lane=np.nan) for c in costs]
    hls = [dict(c, dsp_per_lane=2.0) for c in costs]
    assert [(c["dsp_per_lane"], c["lut_per_lane"]) for c in merge_costs(rtl, hls)] == [(0.5, 100.0), (1.0, 10.0)]
    with pytest.raises(ValueError, match="different numbers"):
        merge_costs(rtl, hls[:1])
