"""The supervised baseline of Table 1 (Li et al., MICCAI 2021): class-weighted CE, epoch chosen on the hold-out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medssl_monai.evaluation import SupervisedBaseline, stratified_splits
from medssl_monai.networks import SiamEncoder3D


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 24 + [1] * 8)
    images = [
        np.full((1, 27, 27, 27), 60.0 * y, np.float32) + rng.normal(0, 5, (1, 27, 27, 27)).astype(np.float32)
        for y in labels
    ]
    return images, labels


def test_trains_on_fit_selects_on_val_and_only_predicts_test(data, monkeypatch):
    images, labels = data
    baseline = SupervisedBaseline(images, labels, SiamEncoder3D(), epochs=2, batch_size=8, progress=False)
    split = stratified_splits(labels, n_splits=4)[0]
    used: list[tuple[str, list[int]]] = []
    original = baseline._data

    def spy(index, train):
        used.append(("train" if train else "eval", sorted(np.asarray(index).tolist())))
        return original(index, train)

    monkeypatch.setattr(baseline, "_data", spy)
    pred, probs = baseline(split)
    fit, val, test = (sorted(a.tolist()) for a in (split.fit, split.val, split.test))
    assert used[0] == ("train", fit)  # gradient steps see the fit part only
    assert used[1:-1] == [("eval", val)] * 2  # one model-selection pass per epoch on the hold-out
    assert used[-1] == ("eval", test)  # the test fold is only predicted, once, with the chosen epoch
    assert pred.shape == (len(test),) and probs.shape == (len(test), 2)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert baseline.history[0]["best_epoch"] in (1, 2)


def test_class_weights_follow_the_balanced_rule(data, monkeypatch):
    images, labels = data
    baseline = SupervisedBaseline(images, labels, SiamEncoder3D(), epochs=1, batch_size=8, progress=False)
    seen = {}
    real = torch.nn.CrossEntropyLoss

    def capture(weight=None, **kwargs):
        seen["weight"] = weight
        return real(weight=weight, **kwargs)

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", capture)
    split = stratified_splits(labels, n_splits=4)[0]
    baseline(split)
    counts = np.bincount(labels[split.fit])
    expected = len(split.fit) / (2 * counts)  # n / (n_classes * n_c)
    np.testing.assert_allclose(seen["weight"].numpy(), expected, rtol=1e-6)


def test_missing_class_in_training_part_is_a_clear_error(data):
    images, labels = data
    baseline = SupervisedBaseline(images, labels, SiamEncoder3D(), epochs=1, progress=False)
    split = stratified_splits(labels, n_splits=4)[0]
    only_major = type(split)(
        fold=0, label_fraction=1.0, fit=split.fit[labels[split.fit] == 0], val=split.val, test=split.test
    )
    with pytest.raises(ValueError, match=r"fold 0: class\(es\) \[1\] missing"):
        baseline(only_major)
