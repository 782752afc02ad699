"""KNN evaluation (Euclidean-uniform of Chattopadhyay et al.; cosine-weighted of Wu et al.) on toy sets."""

import math

import numpy as np
import pytest
import torch

from medssl_monai.evaluation import KNN_MODES, knn_evaluate, knn_predict

# Train: two class-"a" points near the query (Euclidean distance 0.51, cosine c = 0.9 / sqrt(1.06)) and one class-"b"
# point far away on the query's own direction (distance 4, cosine 1). Query: (1, 0).
TRAIN = np.array([[0.9, 0.5], [0.9, -0.5], [5.0, 0.0]])
LABELS = np.array(["a", "a", "b"])
QUERY = np.array([[1.0, 0.0]])
COS_A = 0.9 / math.sqrt(0.9**2 + 0.5**2)


def test_euclidean_uniform_and_cosine_weighted_disagree_by_hand():
    """k = 200 is clipped to the 3 training points. Euclidean, uniform: 2 votes "a" against 1 "b" -> "a".
    Cosine, T = 0.1: w_a = 2 exp(c / T) = 2 exp(8.74) ~ 1.25e4 < w_b = exp(1 / T) ~ 2.2e4 -> "b"."""
    assert 2 * math.exp(COS_A / 0.1) < math.exp(1 / 0.1)
    assert knn_predict(TRAIN, LABELS, QUERY, k=200, mode="euclidean").tolist() == ["a"]
    assert knn_predict(TRAIN, LABELS, QUERY, k=200, mode="cosine", temperature=0.1).tolist() == ["b"]


def test_cosine_weights_are_exp_similarity_over_temperature():
    """Class "b" wins iff exp(1/T) > 2 exp(c/T), i.e. T < (1 - c) / ln 2: check both sides of that threshold."""
    t_star = (1 - COS_A) / math.log(2)
    assert knn_predict(TRAIN, LABELS, QUERY, mode="cosine", temperature=0.95 * t_star).tolist() == ["b"]
    assert knn_predict(TRAIN, LABELS, QUERY, mode="cosine", temperature=1.05 * t_star).tolist() == ["a"]


def test_k_limits_the_neighbourhood():
    """k = 1: the nearest Euclidean point is an "a", the most cosine-similar is the "b"."""
    assert knn_predict(TRAIN, LABELS, QUERY, k=1, mode="euclidean").tolist() == ["a"]
    assert knn_predict(TRAIN, LABELS, QUERY, k=1, mode="cosine", temperature=100.0).tolist() == ["b"]


def test_evaluate_metrics_by_hand():
    """Queries (1, 0) labelled "a" and (0.1, 1) labelled "a". Euclidean: both "a" -> accuracy 1. Cosine (T = 0.1):
    (1, 0) -> "b" (above); (0.1, 1) is nearest in angle to (0.9, 0.5), an "a" -> "a". Accuracy 1/2; weighted F1 =
    support-weighted mean of F1_a = 2 * 1 * 0.5 / 1.5 = 2/3 (support 2) and F1_b = 0 (support 0) = 2/3."""
    queries, truth = np.array([[1.0, 0.0], [0.1, 1.0]]), np.array(["a", "a"])
    euclid = knn_evaluate(TRAIN, LABELS, queries, truth, mode="euclidean")
    assert euclid["accuracy"] == 1.0 and euclid["f1_weighted"] == 1.0 and euclid["k"] == 3
    cosine = knn_evaluate(TRAIN, LABELS, queries, truth, mode="cosine")
    assert cosine["accuracy"] == 0.5
    assert cosine["f1_weighted"] == pytest.approx(2 / 3)
    assert cosine["label"] == KNN_MODES["cosine"] and euclid["label"] == KNN_MODES["euclidean"]


@pytest.mark.parametrize("mode", ["euclidean", "cosine"])
def test_two_separated_clusters(mode):
    g = np.random.default_rng(0)
    centres = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    y_train, y_test = np.repeat([0, 1], 30), np.repeat([0, 1], 10)
    x_train = centres[y_train] + g.normal(size=(60, 3))
    x_test = centres[y_test] + g.normal(size=(20, 3))
    result = knn_evaluate(torch.as_tensor(x_train), torch.as_tensor(y_train), x_test, y_test, k=5, mode=mode)
    assert result["accuracy"] == 1.0 and result["f1_weighted"] == 1.0
    swapped = knn_evaluate(x_train, y_train, x_test, 1 - y_test, k=5, mode=mode)  # wrong labels: all wrong
    assert swapped["accuracy"] == 0.0


def test_cosine_chunking_gives_same_predictions():
    g = np.random.default_rng(1)
    x_train, y_train, x_test = g.normal(size=(50, 8)), g.integers(0, 3, 50), g.normal(size=(37, 8))
    whole = knn_predict(x_train, y_train, x_test, k=7, mode="cosine")
    chunked = knn_predict(x_train, y_train, x_test, k=7, mode="cosine", chunk_size=5)
    np.testing.assert_array_equal(whole, chunked)


def test_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        knn_predict(TRAIN, LABELS, QUERY, mode="manhattan")
    with pytest.raises(ValueError, match="k must"):
        knn_predict(TRAIN, LABELS, QUERY, k=0)
    with pytest.raises(ValueError, match="train labels"):
        knn_predict(TRAIN, LABELS[:2], QUERY)
    with pytest.raises(ValueError, match="dimensions"):
        knn_predict(TRAIN, LABELS, np.ones((1, 3)))
    with pytest.raises(ValueError, match="test labels"):
        knn_evaluate(TRAIN, LABELS, QUERY, ["a", "b"])
