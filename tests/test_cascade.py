"""The cascade math, checked against values worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from twindnn import cascade

# Two classes. Twin max-softmax confidences are sigmoid(|logit difference|):
# s0 [2, 0] -> 0.8808 (right), s1 [0, 1] -> 0.7311 (wrong, label 0),
# s2 [0, 0] -> 0.5 (argmax is class 0, label 1: wrong), s3 [0, 3] -> 0.9526 (right).
TWIN = np.array([[2, 0], [0, 1], [0, 0], [0, 3]], dtype=np.float32)
LABELS = np.array([0, 0, 1, 1])
ORIGINAL_ALL_RIGHT = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
ORIGINAL_WRONG_ON_S3 = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)

SIG = {d: 1 / (1 + math.exp(-d)) for d in (1, 2, 3)}


def test_confidence_two_classes_by_hand():
    assert cascade.confidence(TWIN, "max_softmax") == pytest.approx([SIG[2], SIG[1], 0.5, SIG[3]])
    # top1 - top2 of a two-class softmax is tanh(d / 2).
    assert cascade.confidence(TWIN, "margin") == pytest.approx([math.tanh(1), math.tanh(0.5), 0.0, math.tanh(1.5)])
    p = SIG[2]
    entropy = cascade.confidence(TWIN, "entropy")
    assert entropy[0] == pytest.approx(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert entropy[2] == pytest.approx(-math.log(2))


def test_confidence_three_classes_by_hand():
    logits = np.log(np.array([[1.0, 2.0, 5.0]]))  # softmax = [0.125, 0.25, 0.625]
    assert cascade.confidence(logits, "max_softmax") == pytest.approx([0.625])
    assert cascade.confidence(logits, "margin") == pytest.approx([0.375])
    expected = 0.125 * math.log(0.125) + 0.25 * math.log(0.25) + 0.625 * math.log(0.625)
    assert cascade.confidence(logits, "entropy") == pytest.approx([expected])


def test_confidence_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, 0.0], [1000.0, 1000.0, -1000.0]])
    for gate in cascade.GATES:
        assert np.all(np.isfinite(cascade.confidence(logits, gate)))
    assert cascade.confidence(logits, "max_softmax") == pytest.approx([1.0, 0.5])
    assert cascade.confidence(logits, "margin") == pytest.approx([1.0, 0.0])
    assert cascade.confidence(logits, "entropy") == pytest.approx([0.0, -math.log(2)])


def test_unknown_gate_and_bad_logits_are_refused():
    with pytest.raises(ValueError, match="max_softmax, margin, entropy"):
        cascade.confidence(TWIN, "energy")
    with pytest.raises(ValueError, match="NaN"):
        cascade.confidence(np.array([[0.0, np.nan]]), "max_softmax")


def test_accuracy_recovery():
    assert cascade.accuracy_recovery(0.8, 0.6, 0.9) == pytest.approx(2 / 3)
    assert cascade.accuracy_recovery(0.6, 0.6, 0.9) == 0.0
    assert math.isnan(cascade.accuracy_recovery(0.7, 0.7, 0.7))  # no gap
    assert math.isnan(cascade.accuracy_recovery(0.7, 0.8, 0.7))  # twin better
    out = cascade.accuracy_recovery(np.array([0.6, 0.75, 0.9]), 0.6, 0.9)
    assert out == pytest.approx([0.0, 0.5, 1.0])


def test_sweep_four_samples_by_hand():
    table = cascade.sweep(TWIN, ORIGINAL_ALL_RIGHT, LABELS, "max_softmax")
    assert list(table.columns) == cascade.SWEEP_COLUMNS
    assert table["threshold"].tolist() == pytest.approx([-np.inf, 0.5, SIG[1], SIG[2], SIG[3], np.inf])
    # Forward iff confidence < threshold: threshold 0.5 forwards nothing (s2 sits exactly on it).
    assert table["forwarded_fraction"].tolist() == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]
    # Forwarding s2 then s1 fixes both twin errors; forwarding s0, s3 changes nothing.
    assert table["system_accuracy"].tolist() == [0.5, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert table["accuracy_recovery"].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0]
    assert set(table["twin_accuracy"]) == {0.5} and set(table["original_accuracy"]) == {1.0}
    assert set(table["gate"]) == {"max_softmax"}


def test_sweep_when_the_original_errs_too():
    table = cascade.sweep(TWIN, ORIGINAL_WRONG_ON_S3, LABELS, "margin")
    assert table["forwarded_fraction"].tolist() == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]
    # Original wrong on s3: forwarding everything loses s3 again; recovery can exceed 1.
    assert table["system_accuracy"].tolist() == [0.5, 0.5, 0.75, 1.0, 1.0, 0.75]
    assert table["accuracy_recovery"].tolist() == [0.0, 0.0, 1.0, 2.0, 2.0, 1.0]


def test_ties_fall_on_the_same_side():
    # Three inputs at confidence 0.6 and two at 0.9.
    twin = np.log(np.array([[2, 3]] * 3 + [[9, 1]] * 2, dtype=np.float64))
    labels = np.array([0, 0, 1, 0, 1])
    original = np.eye(2)[labels] * 5
    table = cascade.sweep(twin, original, labels, "max_softmax")
    assert table["threshold"].tolist() == pytest.approx([-np.inf, 0.6, 0.9, np.inf])
    assert table["forwarded_fraction"].tolist() == [0.0, 0.0, 0.6, 1.0]
    on_tie = cascade.evaluate_threshold(twin, original, labels, "max_softmax", table["threshold"].iloc[1])
    just_above = cascade.evaluate_threshold(twin, original, labels, "max_softmax", 0.6 + 1e-9)
    assert on_tie["forwarded_fraction"] == 0.0
    assert just_above["forwarded_fraction"] == 0.6


def test_infinite_thresholds_give_twin_and_original_alone():
    none = cascade.evaluate_threshold(TWIN, ORIGINAL_WRONG_ON_S3, LABELS, "entropy", -np.inf)
    assert none["forwarded_fraction"] == 0.0 and none["system_accuracy"] == 0.5 and none["accuracy_recovery"] == 0.0
    everything = cascade.evaluate_threshold(TWIN, ORIGINAL_WRONG_ON_S3, LABELS, "entropy", np.inf)
    assert everything["forwarded_fraction"] == 1.0
    assert everything["system_accuracy"] == 0.75 and everything["accuracy_recovery"] == 1.0


def test_recovery_is_nan_when_the_twin_is_not_worse():
    table = cascade.sweep(ORIGINAL_ALL_RIGHT, TWIN, LABELS, "max_softmax")  # roles swapped
    assert table["accuracy_recovery"].isna().all()
    points = cascade.choose_operating_points(table, [0.5])
    assert not points["target_reached_val"].iloc[0]
    # Best accuracy there is forwarding nothing (the better "twin" alone), lowest threshold.
    assert points["val_forwarded_fraction"].iloc[0] == 0.0
    assert points["val_system_accuracy"].iloc[0] == 1.0
    assert points["threshold"].iloc[0] == -np.inf


def test_oracle():
    best = cascade.oracle(TWIN, ORIGINAL_ALL_RIGHT, LABELS)
    assert best["forwarded_fraction"] == 0.5 and best["system_accuracy"] == 1.0 and best["accuracy_recovery"] == 1.0
    best = cascade.oracle(TWIN, ORIGINAL_WRONG_ON_S3, LABELS)
    # Forward s1, s2 only: s3 stays with the right twin.
    assert best["forwarded_fraction"] == 0.5 and best["system_accuracy"] == 1.0 and best["accuracy_recovery"] == 2.0


def test_choose_operating_points_by_hand():
    table = cascade.sweep(TWIN, ORIGINAL_ALL_RIGHT, LABELS, "max_softmax")
    points = cascade.choose_operating_points(table, [0.0, 0.5, 0.9, 1.0, 1.5])
    assert points["threshold"].tolist() == pytest.approx([-np.inf, SIG[1], SIG[2], SIG[2], SIG[2]])
    assert points["val_forwarded_fraction"].tolist() == [0.0, 0.25, 0.5, 0.5, 0.5]
    assert points["target_reached_val"].tolist() == [True, True, True, True, False]
    assert set(points["target_kind"]) == {"accuracy_recovery"}


def test_choose_by_budget_by_hand():
    table = cascade.sweep(TWIN, ORIGINAL_ALL_RIGHT, LABELS, "max_softmax")
    points = cascade.choose_by_budget(table, [0.0, 0.3, 0.6, 1.0])
    assert points["val_forwarded_fraction"].tolist() == [0.0, 0.25, 0.5, 0.5]
    assert points["val_system_accuracy"].tolist() == [0.5, 0.75, 1.0, 1.0]
    assert points["target_reached_val"].all()


def _files(twin_val, twin_test, orig_val, orig_test, val_labels, test_labels):
    twin = {"val_logits": twin_val, "val_labels": val_labels, "test_logits": twin_test, "test_labels": test_labels}
    original = {"val_logits": orig_val, "val_labels": val_labels, "test_logits": orig_test, "test_labels": test_labels}
    return twin, original


# Test split: twin confidences 0.8808 (= the val threshold for recovery 0.9, so kept),
# 0.8176, 0.9526, 0.6225; twin right on t1, t2 only; original right everywhere.
TEST_TWIN = np.array([[2, 0], [0, 1.5], [3, 0], [0, 0.5]], dtype=np.float32)
TEST_LABELS = np.array([1, 1, 0, 0])
TEST_ORIGINAL = np.eye(2, dtype=np.float32)[TEST_LABELS]


def test_run_cascade_chooses_on_val_and_reports_test():
    twin, original = _files(TWIN, TEST_TWIN, ORIGINAL_ALL_RIGHT, TEST_ORIGINAL, LABELS, TEST_LABELS)
    sweep, points = cascade.run_cascade(twin, original, gates=["max_softmax"], targets=[0.5, 0.9], budgets=[0.3])
    assert list(sweep.columns) == ["split", *cascade.SWEEP_COLUMNS]
    assert sweep.groupby("split").size().to_dict() == {"test": 7, "val": 7}  # 6 thresholds + oracle
    oracle_rows = sweep[sweep["gate"] == "oracle"].set_index("split")
    assert oracle_rows.loc["val", "system_accuracy"] == 1.0 and math.isnan(oracle_rows.loc["val", "threshold"])

    assert list(points.columns) == cascade.OPERATING_POINT_COLUMNS
    row = points[(points["target_kind"] == "accuracy_recovery") & (points["target_value"] == 0.9)].iloc[0]
    assert row["threshold"] == pytest.approx(SIG[2])
    assert (row["val_forwarded_fraction"], row["val_system_accuracy"], row["val_accuracy_recovery"]) == (0.5, 1.0, 1.0)
    # On test, t1 (0.8176) and t3 (0.6225) go to the original; t0 sits on the threshold and stays.
    assert row["test_forwarded_fraction"] == 0.5
    assert row["test_system_accuracy"] == 0.75  # t0 still wrong
    assert row["test_accuracy_recovery"] == 0.5
    assert (row["test_twin_accuracy"], row["test_original_accuracy"]) == (0.5, 1.0)

    budget = points[points["target_kind"] == "forwarded_budget"].iloc[0]
    assert budget["threshold"] == pytest.approx(SIG[1])
    assert budget["test_forwarded_fraction"] == 0.25  # only t3 below 0.7311


def test_rescore_operating_points_with_another_original():
    twin, original = _files(TWIN, TEST_TWIN, ORIGINAL_ALL_RIGHT, TEST_ORIGINAL, LABELS, TEST_LABELS)
    _, points = cascade.run_cascade(twin, original, gates=["max_softmax"], targets=[0.9])
    # A weaker original (e.g. the 8-bit one on the FPGA): wrong on t1 only.
    weaker = {**original, "test_logits": np.eye(2, dtype=np.float32)[[1, 0, 0, 0]]}
    table = cascade.rescore_operating_points(twin, weaker, points)
    assert table["gate"].tolist() == ["max_softmax", "oracle"]
    row, best = table.iloc[0], table.iloc[1]
    assert row["threshold"] == pytest.approx(SIG[2]) and row["target_value"] == 0.9
    # t1 and t3 forwarded: t1 now wrong (original), t3 right; t0 stays wrong with the twin.
    assert (row["forwarded_fraction"], row["system_accuracy"]) == (0.5, 0.5)
    assert (row["twin_accuracy"], row["original_accuracy"], row["accuracy_recovery"]) == (0.5, 0.75, 0.0)
    # The oracle forwards what the twin gets wrong (t0, t3); the weaker original gets both right.
    assert (best["target_kind"], best["forwarded_fraction"], best["system_accuracy"]) == ("oracle", 0.5, 1.0)
    assert math.isnan(best["threshold"])


def test_run_cascade_refuses_mismatched_labels_and_missing_keys():
    twin, original = _files(TWIN, TEST_TWIN, ORIGINAL_ALL_RIGHT, TEST_ORIGINAL, LABELS, TEST_LABELS)
    original = {**original, "test_labels": TEST_LABELS[::-1].copy()}
    with pytest.raises(ValueError, match="test labels"):
        cascade.run_cascade(twin, original, ["max_softmax"], [0.5])
    with pytest.raises(ValueError, match="val_logits"):
        cascade.run_cascade({k: v for k, v in twin.items() if k != "val_logits"}, original, ["max_softmax"], [0.5])
    twin, original = _files(TWIN, TEST_TWIN, ORIGINAL_ALL_RIGHT, TEST_ORIGINAL, LABELS, TEST_LABELS)
    with pytest.raises(ValueError, match="unknown gate"):
        cascade.run_cascade(twin, original, ["energy"], [0.5])


def test_sweep_matches_brute_force_with_many_ties():
    rng = np.random.default_rng(1)
    n, classes = 400, 5
    labels = rng.integers(0, classes, n)
    twin = np.round(rng.normal(size=(n, classes)), 1).astype(np.float32)  # rounding makes ties
    original = (rng.normal(size=(n, classes)) + 2 * np.eye(classes)[labels]).astype(np.float32)
    for gate in cascade.GATES:
        table = cascade.sweep(twin, original, labels, gate)
        assert table["threshold"].is_monotonic_increasing
        assert table["forwarded_fraction"].is_monotonic_increasing
        for _, row in table.iloc[:: max(1, len(table) // 40)].iterrows():
            direct = cascade.evaluate_threshold(twin, original, labels, gate, row["threshold"])
            assert direct["forwarded_fraction"] == row["forwarded_fraction"]
            assert direct["system_accuracy"] == row["system_accuracy"]


def test_sweep_is_fast_on_imagenet_sized_splits():
    import time

    rng = np.random.default_rng(2)
    n = 50_000
    labels = rng.integers(0, 100, n)
    twin = rng.normal(size=(n, 100)).astype(np.float32)
    start = time.perf_counter()
    table = cascade.sweep(twin, twin, labels, "max_softmax")
    assert time.perf_counter() - start < 5.0
    assert len(table) == pd.unique(cascade.confidence(twin, "max_softmax")).size + 2
