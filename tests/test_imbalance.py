"""RE / SE of Li et al., MICCAI 2021 (Sec. 2), their training-time schedule, and the Suppl. Table 3 diagnostic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from torch import nn

from medssl_monai.engines import ImbalanceHandler, subset_batch
from medssl_monai.imbalance import batch_ratio_diagnostic, cluster, reweight, select


def _blobs(sizes, centres, spread=0.05, seed=0, dim=4):
    rng = np.random.default_rng(seed)
    parts = [np.asarray(c, float) + spread * rng.standard_normal((n, dim)) for n, c in zip(sizes, centres)]
    return np.concatenate(parts)


def test_reweight_known_cluster_sizes():
    """Cluster sizes 6, 3, 1 (N = 10): N / f_j = 10/6, 10/3, 10, rescaled to min 1 -> 1, 2, 6."""
    x = _blobs([6, 3, 1], [[0] * 4, [5] * 4, [-5] * 4])
    w = reweight(x, k=3, seed=0)
    np.testing.assert_allclose(w, [1] * 6 + [2] * 3 + [6])
    assert w.dtype == np.float32


def test_reweight_torch_input_returns_tensor_and_balanced_clusters_give_ones():
    x = torch.as_tensor(_blobs([4, 4, 4], [[0] * 4, [5] * 4, [-5] * 4]))
    w = reweight(x, k=3, seed=1)
    assert isinstance(w, torch.Tensor) and torch.equal(w, torch.ones(12))


def test_select_takes_the_nearest_samples_of_the_two_farthest_centroids():
    """Blobs at 0, 10 and 100: the farthest pair is (0, 100); the 3 samples nearest each of those centres win."""
    rng = np.random.default_rng(0)
    near0 = rng.uniform(0.1, 1.0, 10)
    near100 = rng.uniform(0.1, 1.0, 10)
    x = np.concatenate(
        [near0[:, None] * [1, 0], [[10, 0]] * 10 + rng.normal(0, 0.1, (10, 2)), 100 + near100[:, None] * [1, 0]]
    )
    idx = select(x, k=3, m=6, seed=0)
    assert len(idx) == 6 and len(set(idx.tolist())) == 6
    _, centroids = cluster(x, k=3, seed=0)
    group0 = np.arange(10)[np.argsort(np.linalg.norm(x[:10] - centroids[np.argmin(centroids[:, 0])], axis=1))[:3]]
    group100 = 20 + np.argsort(np.linalg.norm(x[20:] - centroids[np.argmax(centroids[:, 0])], axis=1))[:3]
    assert set(idx.tolist()) == set(group0.tolist()) | set(group100.tolist())


def test_select_is_deterministic_under_a_seed_and_accepts_tensors():
    x = np.random.default_rng(3).standard_normal((30, 16))
    a, b = select(x, seed=5), select(torch.as_tensor(x), seed=5)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.int64
    np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [({"m": 10}, "m < N/k"), ({"k": 1}, "k >= 2"), ({"k": 40}, "cannot form")],
)
def test_select_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select(np.zeros((30, 4)) + np.arange(30)[:, None], **kwargs)


def test_features_must_be_finite_and_two_dimensional():
    with pytest.raises(ValueError, match="NaN"):
        reweight(np.full((6, 3), np.nan))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        reweight(np.zeros(6))


def test_subset_batch_indexes_tensors_and_lists_only():
    batch = {"image": torch.arange(5)[:, None], "id": list("abcde"), "label": torch.tensor([0, 1, 0, 1, 1]), "x": 3}
    out = subset_batch(batch, np.array([4, 1]))
    assert out["image"].ravel().tolist() == [4, 1] and out["id"] == ["e", "b"] and out["label"].tolist() == [1, 1]
    assert out["x"] == 3


class _Embed(nn.Module):
    """A network with BatchNorm whose embedding is its input's first two values (to check eval mode and features)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x):
        return {"embedding": x.flatten(1)[:, :2] + 0 * self.bn(x.flatten(1)[:, :2])}


def _engine(batches_per_epoch: list[dict], handler: ImbalanceHandler) -> tuple[Engine, list]:
    seen = []

    def step(engine, batch):
        assert engine.network.training  # the handler restored train mode
        seen.append((engine.state.epoch, batch))

    engine = Engine(step)
    engine.network = _Embed().train()
    engine.state.device = torch.device("cpu")
    handler.attach(engine)
    return engine, seen


def _candidates(n: int, seed: int) -> dict:
    x = torch.as_tensor(
        _blobs([n - n // 5, n // 5], [[0, 0, 0, 0], [9, 9, 9, 9]], seed=seed, dim=4), dtype=torch.float32
    )
    labels = torch.as_tensor([0] * (n - n // 5) + [1] * (n // 5))
    return {"image": x, "view1": x + 1, "view2": x + 2, "label": labels, "id": [f"c{i}" for i in range(n)]}


def test_se_schedule_plain_first_epoch_then_selection():
    data = [_candidates(30, seed) for seed in range(3)]
    engine, seen = _engine(data, ImbalanceHandler("se", k=3, m=6, q=10, seed=0))
    engine.run(data, max_epochs=2)
    first, second = [b for e, b in seen if e == 1], [b for e, b in seen if e == 2]
    for batch in first + second:
        assert len(batch["view1"]) == 6 and torch.equal(batch["view1"], batch["image"] + 1)  # rows stay together
    # epoch 2: exactly SE's choice on the network's features of the candidates (k-means seed = seed + iterations done)
    for i, (batch, cand) in enumerate(zip(second, data)):
        idx = select(cand["image"][:, :2], k=3, m=6, seed=3 + i)
        assert batch["id"] == [cand["id"][j] for j in idx.tolist()]
    # SE balances: the two farthest clusters here are the two classes -> 3 and 3
    assert all(int(b["label"].sum()) == 3 for b in second)
    assert engine.state.metrics["imbalance_minority_share"] == pytest.approx(0.5)
    assert engine.state.metrics["imbalance_candidate_minority_share"] == pytest.approx(0.2)


def test_re_schedule_adds_weights_from_the_second_epoch():
    data = [_candidates(10, seed) for seed in range(2)]
    engine, seen = _engine(data, ImbalanceHandler("re", k=2, seed=0))
    engine.run(data, max_epochs=2)
    assert all("weight" not in b for e, b in seen if e == 1)
    for e, b in seen:
        if e == 2:
            np.testing.assert_allclose(b["weight"].numpy(), [1] * 8 + [4] * 2)  # sizes 8, 2 -> 1, 4
            assert len(b["image"]) == 10
    assert engine.state.metrics["imbalance_minority_share"] == pytest.approx(0.5)  # 2*4 / (8 + 8)


def test_handler_refuses_bad_modes_and_settings():
    with pytest.raises(ValueError, match="one of"):
        ImbalanceHandler("rs")
    with pytest.raises(ValueError, match="m < N/k"):
        ImbalanceHandler("se", m=6, q=5)


def test_diagnostic_se_balances_separable_classes():
    x = _blobs([72, 20], [[0] * 4, [6] * 4], spread=0.5, dim=4)
    labels = np.array([0] * 72 + [1] * 20)
    out = batch_ratio_diagnostic(x, labels, ks=(2, 3), q=10, m=6, n_batches=60, seed=0, progress=False)
    assert out["minority"] == 1 and out["data_ratio"] == pytest.approx(20 / 72)
    for row in out["rows"]:
        # the two farthest clusters are the two classes: 3 + 3 unless a candidate batch holds < 3 minority samples
        assert row["se_minority_share"] > 0.45 and row["random_minority_share"] < 0.35
