"""Evaluation protocol of Li et al., MICCAI 2021: splits, metrics, linear SVM without leakage, runner, reports, plots."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from medssl_monai.evaluation import (
    LinearSVMClassifier,
    Split,
    align_tables,
    classification_metrics,
    load_embedding_csv,
    plot_correlation_density,
    resolve_positive_class,
    run_protocol,
    stratified_splits,
)


def _labels(counts: dict, seed: int = 0) -> np.ndarray:
    y = np.concatenate([np.full(n, c) for c, n in counts.items()])
    return np.random.default_rng(seed).permutation(y)


def _binary_data(n_pos: int = 70, n_neg: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = _labels({1: n_pos, 0: n_neg}, seed)
    signal = 4.0 * y[:, None] + rng.normal(size=(len(y), 3))
    return y, signal, rng.normal(size=(len(y), 5)), rng.normal(size=(len(y), 10))


# ---------------------------------------------------------------- splits


def test_splits_stratified_disjoint_and_partition():
    y = _labels({0: 60, 1: 23, 2: 17})
    splits = stratified_splits(y, n_splits=5, label_fractions=(1.0,), seed=3)
    assert [s.fold for s in splits] == [0, 1, 2, 3, 4]
    all_tests = np.concatenate([s.test for s in splits])
    assert sorted(all_tests.tolist()) == list(range(len(y)))  # the test parts partition the dataset
    for s in splits:
        assert isinstance(s, Split) and s.label_fraction == 1.0
        parts = [set(s.fit.tolist()), set(s.val.tolist()), set(s.test.tolist())]
        assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1 :])
        assert set(s.train.tolist()) == parts[0] | parts[1]
        assert len(s.fit) + len(s.val) + len(s.test) == len(y)
        for c, n in Counter(y.tolist()).items():
            assert abs(np.sum(y[s.test] == c) - 0.2 * n) <= 1  # 20% of each class in test
            n_train = np.sum(y[s.train] == c)
            assert abs(np.sum(y[s.val] == c) - 0.2 * n_train) <= 1  # 20% of each class of train in val
            assert np.sum(y[s.fit] == c) >= 1
        with pytest.raises(ValueError):
            s.fit[0] = 0  # read-only index arrays


def test_splits_nested_label_fractions_and_seeded():
    y = _labels({"a": 50, "b": 25})
    splits = stratified_splits(y, label_fractions=(1.0, 0.5), seed=1)
    full = {s.fold: s for s in splits if s.label_fraction == 1.0}
    half = {s.fold: s for s in splits if s.label_fraction == 0.5}
    assert len(full) == len(half) == 5
    for fold, s in half.items():
        np.testing.assert_array_equal(s.test, full[fold].test)
        assert set(s.train.tolist()) <= set(full[fold].train.tolist())
        for c in ("a", "b"):
            assert abs(np.sum(y[s.train] == c) - 0.5 * np.sum(y[full[fold].train] == c)) <= 1
    again = stratified_splits(y, label_fractions=(1.0, 0.5), seed=1)
    for a, b in zip(splits, again):
        for part in ("fit", "val", "test"):
            np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    other = stratified_splits(y, label_fractions=(1.0, 0.5), seed=2)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(splits, other))


def test_splits_clear_errors():
    y = np.array([0] * 20 + [1] * 20 + [3] * 2)
    with pytest.raises(ValueError, match="class 3 has 2 samples; stratified 5-fold CV needs at least 5"):
        stratified_splits(y)
    y = np.array([0] * 40 + [1] * 5)  # 4 training samples of class 1 per fold; 10% keeps none
    with pytest.raises(ValueError, match="class 1 keeps 0 of its 4 training samples.*missing from the val part"):
        stratified_splits(y, label_fractions=(0.1,))
    with pytest.raises(ValueError, match="label_fractions"):
        stratified_splits(y, label_fractions=(0.0,))


# ---------------------------------------------------------------- metrics


def test_binary_metrics_by_hand():
    y_true = np.array([1, 1, 1, 1, 0, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.75, 0.05])
    m = classification_metrics(y_true, y_pred, s, classes=[0, 1], positive_class=1)
    # positive pairs ranked above negative ones: 0.9 -> 3, 0.8 -> 3, 0.7 -> 2, 0.1 -> 1 of 4 x 3 pairs
    assert m == pytest.approx(
        {
            "sensitivity": 3 / 4,
            "specificity": 2 / 3,
            "auc": 9 / 12,
            "balanced_accuracy": (3 / 4 + 2 / 3) / 2,
            "accuracy": 5 / 7,
        }
    )
    # class 0 positive, scores as one column per class: roles swap, AUC of the reversed ranking is the same
    swapped = classification_metrics(y_true, y_pred, np.stack([-s, s], 1), classes=[0, 1], positive_class=0)
    assert swapped["sensitivity"] == pytest.approx(2 / 3) and swapped["specificity"] == pytest.approx(3 / 4)
    assert swapped["auc"] == pytest.approx(9 / 12)
    assert np.isnan(classification_metrics(y_true, y_pred, None, [0, 1], 1)["auc"])


def test_multiclass_metrics_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 0, 2, 2, 2, 0, 2])
    m = classification_metrics(y_true, y_pred, None, classes=[0, 1, 2])
    assert m == pytest.approx(
        {"accuracy": 7 / 10, "minor_class_accuracy": 1 / 2, "balanced_accuracy": (2 / 3 + 1 / 2 + 4 / 5) / 3}
    )
    assert classification_metrics(y_true, y_pred, None, [0, 1, 2], minor_class=0)["minor_class_accuracy"] == (
        pytest.approx(2 / 3)
    )
    with pytest.raises(ValueError, match="not in classes"):
        classification_metrics(y_true, np.full(10, 7), None, [0, 1, 2])


def test_positive_class_resolution():
    y = np.array(["H"] * 5 + ["L"] * 2)
    assert resolve_positive_class(y, "majority") == "H"
    assert resolve_positive_class(y, "minority") == "L"
    assert resolve_positive_class(y, "L") == "L"
    with pytest.raises(ValueError, match="not a class"):
        resolve_positive_class(y, "X")
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_positive_class(np.array([0, 0, 1, 1]), "majority")


# ---------------------------------------------------------------- no leakage


def _fitted_state(result):
    return {
        "C": result.C,
        "val_scores": result.val_scores,
        "means": [s.mean_.copy() for s in result.scalers],
        "scales": [s.scale_.copy() for s in result.scalers],
        "coef": result.model.coef_.copy(),
        "intercept": result.model.intercept_.copy(),
    }


def _assert_same(a, b):
    assert a["C"] == b["C"] and a["val_scores"] == b["val_scores"]
    for key in ("means", "scales"):
        for x, z in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, z)
    np.testing.assert_array_equal(a["coef"], b["coef"])
    np.testing.assert_array_equal(a["intercept"], b["intercept"])


def test_test_rows_never_reach_scaler_C_or_model():
    y, weak, noise, _ = _binary_data(seed=4)
    weak = weak * 0.15 + noise[:, :3]  # a noisy signal, so that C matters
    blocks = [weak, noise]
    clf = LinearSVMClassifier()
    rng = np.random.default_rng(0)
    for split in stratified_splits(y, label_fractions=(1.0, 0.5)):
        base = clf.fit_predict(blocks, y, split)
        changed = [b.copy() for b in blocks]
        for b in changed:
            b[split.test] = rng.normal(scale=1e3, size=(len(split.test), b.shape[1]))
        y_changed = y.copy()
        y_changed[split.test] = 1 - y_changed[split.test]  # flip every test label
        other = clf.fit_predict(changed, y_changed, split)
        _assert_same(_fitted_state(base), _fitted_state(other))
        assert not np.array_equal(base.scores, other.scores)  # the test rows did reach prediction


def test_val_rows_choose_C_test_rows_cannot():
    y, weak, noise, _ = _binary_data(seed=4)
    blocks = [weak * 0.15 + noise[:, :3], noise]
    clf = LinearSVMClassifier()
    C_changed = 0
    for split in stratified_splits(y, label_fractions=(1.0,)):
        base = clf.fit_predict(blocks, y, split)
        y_val = y.copy()
        y_val[split.val] = 1 - y_val[split.val]  # flip the val labels: the selection score turns over
        other = clf.fit_predict(blocks, y_val, split)
        assert base.val_scores != other.val_scores
        C_changed += base.C != other.C
        moved = [b.copy() for b in blocks]
        moved[0][split.val[0]] += 100.0  # a val row is part of the final training set (and its scaler)
        refit = clf.fit_predict(moved, y, split)
        assert not np.array_equal(refit.scalers[0].mean_, base.scalers[0].mean_)
    assert C_changed >= 1


# ---------------------------------------------------------------- protocol and reports


def test_run_protocol_separable_random_and_outputs(tmp_path: Path):
    y, signal, noise, random = _binary_data()
    seen_tests = []

    def centroid(split: Split):
        seen_tests.append(split.test.copy())
        mu = {c: signal[split.train][y[split.train] == c].mean(0) for c in (0, 1)}
        d = {c: np.linalg.norm(signal[split.test] - mu[c], axis=1) for c in (0, 1)}
        return np.where(d[1] < d[0], 1, 0), d[0] - d[1]

    records = run_protocol(
        {"Separable": [signal, noise], "Random": [random]},
        y,
        extra_predictors={"Nearest centroid": centroid},
        class_names={0: "L-grade", 1: "H-grade"},
        output_dir=tmp_path,
        progress=False,
    )
    assert [(r["feature_set"], r["label_fraction"]) for r in records] == [
        ("Separable", 1.0),
        ("Separable", 0.5),
        ("Random", 1.0),
        ("Random", 0.5),
        ("Nearest centroid", 1.0),
        ("Nearest centroid", 0.5),
    ]
    by = {(r["feature_set"], r["label_fraction"]): r for r in records}
    sep, rnd = by[("Separable", 1.0)], by[("Random", 1.0)]
    assert sep["positive_class"] == 1 and sep["n_folds"] == 5 and sep["n_features"] == 8
    assert sep["metrics"]["auc"]["mean"] > 0.99 and sep["metrics"]["sensitivity"]["mean"] > 0.95
    assert 0.25 < rnd["metrics"]["auc"]["mean"] < 0.75
    assert len(sep["metrics"]["auc"]["folds"]) == 5
    assert sep["metrics"]["auc"]["std"] == pytest.approx(np.std(sep["metrics"]["auc"]["folds"], ddof=1))
    assert len(sep["chosen_C"]) == 5 and all(isinstance(c, float) for c in sep["chosen_C"])
    assert by[("Nearest centroid", 1.0)]["chosen_C"] == [None] * 5
    # the extra predictor saw the very splits of the SVM rows
    svm_tests = [p["test_index"] for r in records[:2] for p in r["predictions"]]
    assert [t.tolist() for t in seen_tests] == svm_tests
    assert by[("Nearest centroid", 1.0)]["metrics"]["auc"]["mean"] > 0.99

    doc = json.loads((tmp_path / "results.json").read_text())
    header = doc["header"]
    assert header["n_samples"] == 100 and header["n_splits"] == 5 and header["seed"] == 0
    assert header["positive_class"] == {"value": 1, "name": "H-grade"}
    assert {c["name"]: c["count"] for c in header["classes"]} == {"L-grade": 30, "H-grade": 70}
    assert header["label_fractions"] == [1.0, 0.5] and len(header["C_grid"]) == 7
    assert len(doc["records"]) == 6 and "predictions" not in doc["records"][0]
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Method | Sensitivity (full labels) | Specificity (full labels) | AUC (full labels) |" in md
    assert "Specificity (50% labels)" in md and "Positive class: H-grade (majority class)" in md
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ") and "±" in line]
    assert rows == ["| Separable", "| Random", "| Nearest centroid"]
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == 1 + 6 * 100
    assert not list(tmp_path.glob(".*.tmp"))


def test_run_protocol_multiclass_report(tmp_path: Path):
    rng = np.random.default_rng(1)
    y = _labels({"I": 30, "II": 12, "III": 58}, seed=1)
    onehot = (y[:, None] == np.array(["I", "II", "III"])).astype(float)
    features = 3.0 * onehot + rng.normal(size=(len(y), 3))
    records = run_protocol({"Good": [features]}, y, label_fractions=(1.0,), output_dir=tmp_path, progress=False)
    (record,) = records
    assert set(record["metrics"]) == {"accuracy", "minor_class_accuracy", "balanced_accuracy"}
    assert record["positive_class"] is None and record["roc_class"] == "II"
    assert record["metrics"]["accuracy"]["mean"] > 0.8
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Method | Accuracy (full labels) | Minor-class accuracy (full labels) |" in md
    assert "recall of II" in md and (tmp_path / "roc.png").is_file()


def test_run_protocol_clear_errors():
    y, signal, noise, _ = _binary_data()
    with pytest.raises(ValueError, match="feature set 'Short', block 1: expected shape \\(100, d\\)"):
        run_protocol({"Short": [signal, noise[:90]]}, y, progress=False)
    with pytest.raises(ValueError, match="feature set 'Bad', block 0: 1 NaN"):
        bad = signal.copy()
        bad[3, 1] = np.nan
        run_protocol({"Bad": [bad]}, y, progress=False)
    with pytest.raises(ValueError, match="predictor 'Broken'.*y_pred has shape"):
        run_protocol({}, y, extra_predictors={"Broken": lambda s: (np.zeros(3), None)}, progress=False)


# ---------------------------------------------------------------- correlation density (Fig. 2)


def test_correlation_density_extremes(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    redundant = np.hstack([x * a + b for a, b in zip([1.0, 2.0, 0.5, 3.0, 7.0], [0.0, 1.0, -2.0, 5.0, 0.3])])
    redundant = np.hstack([redundant, np.ones((200, 2))])  # two constant columns
    independent = rng.normal(size=(2000, 20))
    summary = plot_correlation_density({"Redundant": redundant, "Independent": independent}, tmp_path / "corr.png")
    assert summary["Redundant"]["n_constant"] == 2 and summary["Redundant"]["n_pairs"] == 10
    assert summary["Redundant"]["mean_abs_r"] == pytest.approx(1.0, abs=1e-9)
    assert summary["Redundant"]["median_abs_r"] == pytest.approx(1.0, abs=1e-9)
    assert summary["Independent"]["n_pairs"] == 190 and summary["Independent"]["n_constant"] == 0
    assert summary["Independent"]["mean_abs_r"] < 0.05
    assert (tmp_path / "corr.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- tables


def test_align_tables_reorders_and_names_missing_ids():
    ids = ["c", "a", "b"]
    tables = {"radiomics": (["a", "b", "c", "d"], np.arange(8.0).reshape(4, 2)), "ssl": (["b", "c", "a"], np.eye(3))}
    aligned = align_tables(tables, ids)
    np.testing.assert_array_equal(aligned["radiomics"], [[4, 5], [0, 1], [2, 3]])
    np.testing.assert_array_equal(aligned["ssl"], np.eye(3)[[1, 2, 0]])
    with pytest.raises(ValueError, match="table 'radiomics' lacks 2 of the 4 requested ids: 'e', 'f'"):
        align_tables(tables, ["a", "e", "f", "b"])
    with pytest.raises(ValueError, match="table 'ssl' lacks 1 of the 2 requested ids: 'd'"):
        align_tables(tables, ["a", "d"])
    with pytest.raises(ValueError, match="table 'x' lists 1 id\\(s\\) more than once: 'a'"):
        align_tables({"x": (["a", "a"], np.eye(2))}, ["a"])


def test_load_embedding_csv(tmp_path: Path):
    path = tmp_path / "embeddings.csv"
    path.write_text("id,label,f0,f1\ncase1,1,0.5,-1\ncase2,0,2,3e-1\n")
    ids, labels, values = load_embedding_csv(path)
    assert ids == ["case1", "case2"] and labels.tolist() == [1, 0]
    np.testing.assert_allclose(values, [[0.5, -1.0], [2.0, 0.3]])
    path.write_text("id,f0,f1,f2\nx,1,2,3\n")
    ids, labels, values = load_embedding_csv(path)
    assert labels is None and values.shape == (1, 3)
    path.write_text("id,label,f0\na,1,0.1\nb,0,nan\n")
    with pytest.raises(ValueError, match="embeddings.csv, line 3 \\(id 'b'\\): NaN"):
        load_embedding_csv(path)
    path.write_text("id,label,f0\na,1,0.1,0.2\n")
    with pytest.raises(ValueError, match="embeddings.csv, line 2: 4 fields, the header has 3"):
        load_embedding_csv(path)
    path.write_text("id,label,f0\na,1,abc\n")
    with pytest.raises(ValueError, match="non-numeric value 'abc'"):
        load_embedding_csv(path)
