"""Committed runs: every FPGA headline row called fitting fits its board's budget (board files)."""
from pathlib import Path

import pandas as pd
import pytest

from twindnn.hardware.tables import budget_violations

ROOT = Path(__file__).resolve().parents[1]
HEADLINES = sorted((ROOT / "results").glob("*/tables/hw_headline.csv"))


@pytest.mark.parametrize("path", HEADLINES, ids=[p.parts[-3] for p in HEADLINES])
def test_committed_headline_rows_fit_their_budget(path):
    assert not budget_violations(pd.read_csv(path))


def test_budget_check_catches_an_overfull_pair():
    row = {"board": "ZCU104", "twin": "w1a1", "gate": "max_softmax", "scheduler": "work_sharing", "fits": True,
           "utilization_budget": 0.85, "total_LUT": 1000, "total_DSP": 10, "total_BRAM_18K": 557, "total_URAM": 0}
    # 557 of 624 BRAM_18K is 89 %: over the 85 % budget although under 100 %
    assert budget_violations(pd.DataFrame([row])) == [
        "row 0 (ZCU104, w1a1, max_softmax, work_sharing): BRAM_18K 557 > 530"]
    assert not budget_violations(pd.DataFrame([{**row, "total_BRAM_18K": 530}]))


def test_no_product_file_names_the_development_notes():
    """The repository stands alone: nothing tracked cites the development setup's notes folder."""
    import subprocess

    folder = "../" + "shared"  # written in two parts so that this file does not name it
    notes = "PAPER" + ".md"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    hits = [f for f in tracked if (ROOT / f).is_file() and not f.endswith((".png", ".pt", ".npy"))
            and any(s in (ROOT / f).read_text(errors="ignore") for s in (folder, "shared/" + notes, notes))]
    assert not hits, hits
