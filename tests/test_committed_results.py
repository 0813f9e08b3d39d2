"""Committed runs: every FPGA headline row called fitting fits its board's budget (board files)."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from twindnn.hardware.tables import budget_violations

ROOT = Path(__file__).resolve().parents[1]
HEADLINES = sorted((ROOT / "results").glob("*/tables/hw_headline.csv"))
# The gate of the default's design point: the one its README tables and answer show.
DESIGN_GATE = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["hardware"]["design_point"]["gate"]


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


def _readme_table(heading: str, first_column: str = "board") -> pd.DataFrame:
    """The first Markdown table after ``heading`` in the README whose first column is
    ``first_column``, cells as strings."""
    text = (ROOT / "README.md").read_text()
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start:end]]
    rows = rows[:next((i for i, r in enumerate(rows) if i and not r[0].startswith("---") and len(r) != len(rows[0])),
                      len(rows))]
    return pd.DataFrame([r for r in rows[2:]], columns=rows[0])


@pytest.mark.parametrize("heading, run, rows", [("### Fashion-MNIST, the embedded default", "fashion_mnist_default", 8),
                                               ("### CIFAR-10 (JPEG copy), the CPU config", "cifar10_cpu", 12)])
def test_readme_fpga_table_is_read_from_the_committed_headline(heading, run, rows):
    """A README FPGA table cannot drift from its committed run's hw_headline.csv."""
    shown = _readme_table(heading)
    headline = pd.read_csv(ROOT / "results" / run / "tables" / "hw_headline.csv")
    headline = headline[(headline["gate"] == DESIGN_GATE) & (headline["target_kind"] == "accuracy_recovery")
                        & (headline["selection"] == "point")]
    assert len(shown) == rows
    for _, row in shown.iterrows():
        match = headline[(headline["board"] == row["board"]) & (headline["scheduler"] == row["scheduler"])
                         & (headline["target_value"] == float(row["target"]))
                         & ((headline["twin"] == row["twin"]) if "twin" in row else True)]
        assert len(match) == 1, row.to_dict()
        h = match.iloc[0]
        if not h["fits"]:
            assert row["TwinDNN FPS"] == f"does not fit: {h['pair_limit'].removeprefix('does not fit: ')}"
            continue
        assert row["TwinDNN FPS"].split(" [")[0] == f"{h['twindnn_fps']:,.0f}"
        assert row["(a) strongest original FPS"] == f"{h['original_alone_fps']:,.0f}"
        assert row["vs (a)"].split(" [")[0] == f"{h['gain_vs_original_alone']:.2f}x"
        assert row["vs (a, DSP only)"] == f"{h['gain_vs_original_dsp_alone']:.2f}x"
        assert row["vs (b)"] == f"{h['gain_vs_original_in_pair']:.2f}x"
        assert row["vs (c) bound"] == f"{h['gain_vs_time_shared_bound']:.2f}x"
        assert row["forwarded"].split(" [")[0] == f"{h['forwarded_fraction']:.1%}"
        assert row["TwinDNN acc."].split(" [")[0] == f"{h['twindnn_accuracy']:.1%}"
        assert row["recovery"].split(" [")[0] == f"{h['accuracy_recovery']:.1%}"
        assert row["vs (d)"] == f"{h['gain_vs_twin_alone']:.2f}x"
        sensitivity = f"{'yes' if h['sensitivity_fits'] else 'no'}, {h['sensitivity_gain_vs_original_alone']:.2f}x"
        assert row["LUT x1.6, BRAM x2: fits, vs (a)"] == sensitivity


def test_readme_cifar10_cpu_table_is_read_from_the_committed_summary():
    """The CIFAR-10 CPU section's table of CPU-measured operating points (design gate, point rule)
    cannot drift from the committed summary.csv."""
    shown = _readme_table("### CIFAR-10 (JPEG copy), the CPU config", "twin")
    summary = pd.read_csv(ROOT / "results" / "cifar10_cpu" / "tables" / "summary.csv")
    summary = summary[(summary["gate"] == DESIGN_GATE) & (summary["selection"] == "point")
                      & (summary["target_kind"] == "accuracy_recovery")]
    assert len(shown) == 4
    for _, row in shown.iterrows():
        match = summary[(summary["twin"] == row["twin"]) & (summary["target_value"] == float(row["target"]))]
        assert len(match) == 1, row.to_dict()
        m = match.iloc[0]
        assert row["original (float)"] == f"{m['original_test_accuracy']:.1%}"
        assert row["twin"] == m["twin"] and row["twin acc."] == f"{m['twin_test_accuracy']:.1%}"
        assert row["TwinDNN"] == (f"{m['twindnn_test_accuracy']:.1%} [{m['twindnn_test_accuracy_ci95_low']:.1%}, "
                                  f"{m['twindnn_test_accuracy_ci95_high']:.1%}]")
        assert row["recovery"] == (f"{m['test_accuracy_recovery']:.0%} [{m['test_accuracy_recovery_ci95_low']:.0%}, "
                                   f"{m['test_accuracy_recovery_ci95_high']:.0%}]")
        assert row["forwarded"] == f"{m['test_forwarded_fraction']:.1%}"
        assert row["CPU: original FPS"] == f"{m['original_throughput_fps']:,.0f}"
        assert row["twin FPS"] == f"{m['twin_throughput_fps']:,.0f}"
        assert row["cascade FPS"] == f"{m['twindnn_throughput_fps']:,.0f}"


def _span(values, fmt: str, unit: str = "") -> str:
    """A range as the README writes it: "1.6-1.7x", or one value where both ends print alike."""
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def _claim_and_short_statement() -> tuple[str, str]:
    """The README's claim paragraph and its short statement, on one line each, bold marks removed."""
    text = (ROOT / "README.md").read_text().replace("\n", " ")
    claim = text[text.index("**The claim, and ours.**"):text.index("runs are committed under")]
    short = text[text.index("**In short.**"):text.index("**The claim, and ours.**")]
    return claim.replace("**", ""), short.replace("**", "")


def _design_points(run: str) -> pd.DataFrame:
    """A committed run's headline rows that the README's sentences quote: the design gate, work
    sharing, the point rule, recovery targets 0.9 and 0.94."""
    h = pd.read_csv(ROOT / "results" / run / "tables" / "hw_headline.csv")
    return h[(h["gate"] == DESIGN_GATE) & (h["scheduler"] == "work_sharing") & (h["target_kind"] == "accuracy_recovery")
             & (h["selection"] == "point") & h["target_value"].isin([0.9, 0.94])]


def test_readme_claim_paragraph_matches_the_committed_default():
    """The README's short statement and its one-paragraph answer quote the default's work-sharing recoveries and gains over
    (b) and (a) at the 0.9 and 0.94 targets, and the sensitivity gain on the ZCU104, at the design
    gate; they come from the committed headline."""
    claim, short = _claim_and_short_statement()
    h = _design_points("fashion_mnist_default")
    assert f"`{DESIGN_GATE}`" in claim and len(h) == 4

    zcu, u250 = (h[h["board"] == b] for b in ("ZCU104", "U250"))
    assert f"recovers {_span(100 * h['accuracy_recovery'], '{:.0f}', ' %')}" in claim
    assert f"gains {_span(h['gain_vs_original_in_pair'], '{:.1f}', 'x')} against that baseline (b)" in claim
    assert f"{_span(zcu['gain_vs_original_alone'], '{:.1f}', 'x')} on the ZCU104" in claim
    assert f"{_span(u250['gain_vs_original_alone'], '{:.1f}', 'x')} on the U250" in claim
    assert f"falls to {_span(zcu['sensitivity_gain_vs_original_alone'], '{:.2f}', 'x')}" in claim
    # the short statement that opens the results section says the same
    assert f"{_span(100 * h['accuracy_recovery'], '{:.0f}', ' %')} back" in short
    assert f"{_span(zcu['gain_vs_original_alone'], '{:.1f}', 'x')} on the ZCU104" in short
    assert f"{_span(u250['gain_vs_original_alone'], '{:.1f}', 'x')} on the U250" in short


def test_make_reproduce_writes_its_own_ignored_folder_beside_the_committed_reference():
    """`make reproduce` runs the default under its own name with the committed run as reference;
    git ignores that folder, so a fresh clone's reproduction leaves `git status` clean."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("CONFIG", "RUN", "MAKEFLAGS")}
    dry = subprocess.run(["make", "-n", "reproduce"], cwd=ROOT, capture_output=True, text=True, env=env).stdout
    assert "run_name=fashion_mnist_default_fresh reference_run=fashion_mnist_default" in dry
    assert "--report results/fashion_mnist_default_fresh/report.html" in dry
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/fashion_mnist_default_fresh/tables/answer.md"],
                             cwd=ROOT)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0  # ignored
    kept = subprocess.run(["git", "check-ignore", "-q", "results/fashion_mnist_default/tables/answer.md"], cwd=ROOT)
    assert kept.returncode == 1  # the committed reference's tables are tracked


def test_readme_cifar10_sentences_match_the_committed_cifar10_cpu_run():
    """The CIFAR-10 sentences of the short statement and of the claim paragraph quote the committed
    cifar10_cpu headline: which boards hold nothing, and the U250 gains over (a), at the design gate
    with work sharing, targets 0.9 and 0.94, with and without the scaled LUT/BRAM estimates."""
    claim, short = _claim_and_short_statement()
    h = _design_points("cifar10_cpu")

    ultra, zcu = h[h["board"] == "Ultra96-V2"], h[h["board"] == "ZCU104"]
    assert not ultra["fits"].any() and ultra["original_alone_fps"].isna().all()  # "nothing fits"
    assert not zcu["fits"].any()  # "no pair fits"
    for words in (claim, short):
        assert "nothing fits the paper's Ultra96-V2" in words
        assert "no pair fits the ZCU104" in words
    u250 = {twin: h[(h["board"] == "U250") & (h["twin"] == twin)] for twin in ("t2a8", "w1a1")}
    assert all(len(rows) == 2 and rows["fits"].all() for rows in u250.values())
    gain = {t: _span(r["gain_vs_original_alone"], "{:.2f}") for t, r in u250.items()}
    sens = {t: _span(r["sensitivity_gain_vs_original_alone"], "{:.2f}") for t, r in u250.items()}
    assert f"the T2A8 twin gains {gain['t2a8']}x against (a) (W1A1: {gain['w1a1']}x)" in claim
    assert f"fall to {sens['t2a8']}x (T2A8) and {sens['w1a1']}x (W1A1)" in claim
    recovery = _span(100 * u250["w1a1"]["accuracy_recovery"], "{:.0f}")
    assert f"at {gain['t2a8']}x with the T2A8 twin, and recovers {recovery} % at {gain['w1a1']}x with W1A1" in short
    assert f"fall to {sens['t2a8']}x and {sens['w1a1']}x" in short
    assert f"({u250['t2a8']['twindnn_accuracy'].max():.1%})".replace("%", " %") in short
    first = u250["t2a8"].iloc[0]
    assert (f"W16A8 original at {first['original_accuracy']:.1%}, T2A8 twin at "
            f"{first['twin_accuracy']:.1%}").replace("%", " %") in short
