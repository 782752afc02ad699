"""Held-out representation health, the non-finite loss guard and bf16 autocast of the SSL trainer."""

import math

import pytest
import torch
from ignite.engine import Engine, Events
from torch import nn

from medssl_monai.engines import (
    CollapseError,
    EmbeddingHealth,
    HeldOutHealth,
    NonFiniteLossError,
    NonFiniteLossGuard,
    SSLTrainer,
)
from medssl_monai.evaluation import representation_health
from medssl_monai.networks import build_method


def test_health_figures_healthy_collapsed_and_knn():
    torch.manual_seed(0)
    healthy = representation_health(torch.randn(400, 32))
    assert healthy["std_ratio"] == pytest.approx(1.0, abs=0.05) and healthy["effective_rank"] > 25
    collapsed = representation_health(torch.ones(50, 32) + 1e-6 * torch.randn(50, 32))
    assert collapsed["std_ratio"] < 1e-3
    # two well-separated clusters: the cross-validated kNN gets every label right; shuffled labels: about chance
    labels = torch.arange(100) % 2
    clusters = torch.randn(100, 8) * 0.1 + labels[:, None].float() * torch.tensor([5.0] + [0.0] * 7) - 2.5
    assert representation_health(clusters, labels)["knn_accuracy"] == 1.0
    shuffled = representation_health(clusters, labels[torch.randperm(100)])
    assert 0.25 < shuffled["knn_balanced_accuracy"] < 0.75


def test_health_never_raises_on_nonfinite():
    x = torch.randn(20, 8)
    x[3, 2] = float("nan")
    stats = representation_health(x, torch.arange(20) % 2)
    assert stats["finite"] == 0.0 and math.isnan(stats["std_ratio"]) and math.isnan(stats["knn_accuracy"])
    assert math.isnan(EmbeddingHealth.statistics(x)["embedding_effective_rank"])


class _BNNet(nn.Module):
    """Embeds with batch norm: train mode and eval mode give different outputs, and it records the mode it ran in."""

    def __init__(self, constant: bool = False):
        super().__init__()
        self.lin, self.bn, self.constant, self.modes = nn.Linear(4, 6), nn.BatchNorm1d(6), constant, []

    def forward(self, x):
        self.modes.append(self.training)
        out = self.bn(self.lin(x))
        return torch.ones_like(out) if self.constant else out


def _batches(n=40, batch=10):
    torch.manual_seed(1)
    x, y = torch.randn(n, 4), torch.arange(n) % 2
    return [{"image": x[i : i + batch], "label": y[i : i + batch]} for i in range(0, n, batch)]


def test_held_out_health_runs_in_eval_mode_and_restores_train_mode():
    net = _BNNet().train()
    handler = HeldOutHealth(net, _batches(), interval=1)
    engine = Engine(lambda e, b: None)
    handler.attach(engine)
    engine.run(range(3), max_epochs=2)
    assert net.training and net.modes == [False] * 8  # 4 batches x 2 epochs, all in eval mode
    assert len(handler.history) == 2
    assert {"health_std_ratio", "health_effective_rank", "health_knn_accuracy"} <= set(engine.state.metrics)
    # eval mode: running statistics (fresh: mean 0, var 1), so the embeddings are the linear layer's outputs
    emb, labels = handler.embed()
    with torch.no_grad():
        expected = net.lin(torch.cat([b["image"] for b in _batches()])) / math.sqrt(1 + net.bn.eps)
    torch.testing.assert_close(emb, expected)
    assert labels.tolist() == (torch.arange(40) % 2).tolist()


def test_held_out_health_stops_on_collapse():
    engine = Engine(lambda e, b: None)
    HeldOutHealth(_BNNet(constant=True), _batches(), on_collapse="stop").attach(engine)
    with pytest.raises(CollapseError, match="collapse on the held-out set at epoch 1"):
        engine.run(range(2), max_epochs=1)
    with pytest.raises(ValueError, match="on_collapse"):
        HeldOutHealth(_BNNet(), _batches(), on_collapse="explode")


def _trainer(batches, method="vicreg", **kwargs):
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 8))
    m = build_method(method, backbone, feature_dim=8, out_features=16, hidden_features=16)
    opt = torch.optim.SGD(m.network.parameters(), lr=0.01)
    trainer = SSLTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=batches,
        network=m.network,
        optimizer=opt,
        loss_function=m.loss,
        loss_input_keys=m.loss_input_keys,
        **kwargs,
    )
    return trainer, m.network


def _view_batches(nan_at: int | None = None):
    gen = torch.Generator().manual_seed(0)
    batches = [
        {"view1": torch.randn(8, 1, 4, 4, generator=gen), "view2": torch.randn(8, 1, 4, 4, generator=gen)}
        for _ in range(3)
    ]
    if nan_at is not None:
        batches[nan_at]["view1"][2, 0, 1, 1] = float("nan")
    return batches


def test_nan_in_a_batch_stops_with_a_clear_error_before_the_step():
    trainer, net = _trainer(_view_batches(nan_at=1))
    snapshot = {}
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: snapshot.update({k: v.clone() for k, v in net.state_dict().items()})
    )
    with pytest.raises(NonFiniteLossError) as err:
        trainer.run()
    text = str(err.value)
    assert "iteration 2" in text and "epoch 1" in text
    assert "invariance nan" in text and "variance" in text and "covariance" in text  # the VICReg terms are named
    assert "learning rate" in text  # a remedy
    # the failing step changed no weight
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshot[k], equal_nan=True)


def test_skip_policy_counts_and_continues():
    trainer, net = _trainer(_view_batches(nan_at=1), nonfinite="skip")
    trainer.run()
    assert trainer.state.iteration == 3 and trainer.state.metrics["nonfinite_steps"] == 1
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())
    trainer, _ = _trainer(_view_batches(nan_at=1), nonfinite="skip", max_nonfinite=0)
    with pytest.raises(NonFiniteLossError, match="max_skips=0"):
        trainer.run()
    with pytest.raises(ValueError, match="nonfinite policy"):
        NonFiniteLossGuard("ignore")


def test_bf16_autocast_step_matches_fp32():
    losses = {}
    for dtype in (None, "bfloat16"):
        trainer, _ = _trainer(_view_batches(), method="simsiam", autocast_dtype=dtype)
        trainer.run()
        losses[dtype] = float(trainer.state.output["loss"])
    assert losses["bfloat16"] == pytest.approx(losses[None], abs=0.05)
    with pytest.raises(ValueError, match="autocast_dtype"):
        _trainer(_view_batches(), autocast_dtype="int8")


def test_recalibrate_batch_norm_gives_the_average_batch_statistics():
    from medssl_monai.engines import recalibrate_batch_norm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    net[1].running_mean.fill_(7.0)
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    batches = [torch.randn(5, 3) * (i + 1) for i in range(4)]
    n = recalibrate_batch_norm(net.eval(), [{"image": b} for b in batches] + [{"image": torch.randn(1, 3)}])
    assert n == 4 and not net.training and net[1].momentum == 0.1  # single-sample batch skipped; state restored
    with torch.no_grad():
        pre = [net[0](b) for b in batches]
    torch.testing.assert_close(net[1].running_mean, torch.stack([p.mean(0) for p in pre]).mean(0))
    torch.testing.assert_close(net[1].running_var, torch.stack([p.var(0) for p in pre]).mean(0))
    for k, v in weights.items():
        torch.testing.assert_close(net.state_dict()[k], v)
    assert recalibrate_batch_norm(nn.Linear(2, 2), [{"image": torch.randn(4, 2)}]) == 0
    kept = net[1].running_mean.clone()  # max_batches=0: nothing seen, the statistics stay as they were
    assert recalibrate_batch_norm(net, [{"image": torch.randn(5, 3)}], max_batches=0) == 0
    torch.testing.assert_close(net[1].running_mean, kept)


def test_held_out_datalist(tmp_path):
    from medssl_monai.data import held_out_datalist, synthetic_datalist

    phantoms = held_out_datalist(None, n=6, synthetic={"n": 20, "size": [32, 32, 32], "seed": 3})
    train_ids = {item["id"]: item["image"] for item in synthetic_datalist(n=20, size=(32, 32, 32), seed=3)}
    assert len(phantoms) == 6 and not any(
        bool((item["image"] == train_ids[item["id"]]).all()) for item in phantoms
    )  # new phantoms, not the training ones
    import numpy as np

    np.savez(
        tmp_path / "s.npz",
        train_images=np.zeros((10, 28, 28, 28), np.uint8),
        train_labels=np.zeros((10, 1)),
        val_images=np.ones((3, 28, 28, 28), np.uint8),
        val_labels=np.ones((3, 1)),
    )
    assert [i["id"] for i in held_out_datalist(tmp_path / "s.npz")] == ["val_00000", "val_00001", "val_00002"]
    np.savez(tmp_path / "t.npz", train_images=np.zeros((10, 28, 28, 28), np.uint8), train_labels=np.zeros((10, 1)))
    assert [i["id"] for i in held_out_datalist(tmp_path / "t.npz", n=5)] == [f"train_{i:05d}" for i in range(0, 10, 2)]
    with pytest.raises(ValueError, match="n >= 2"):
        held_out_datalist(None, n=1)


def test_probe_and_monai_trainer_stop_on_nonfinite_loss():
    from monai.engines import SupervisedTrainer

    from medssl_monai.evaluation import train_probe

    x = torch.randn(20, 3)
    x[4, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):  # features are checked up front
        train_probe(x, torch.arange(20) % 2, kind="linear", epochs=1)
    # a loss that overflows mid-training: huge learning rate on a linear probe
    with pytest.raises(NonFiniteLossError, match=r"in linear probe at epoch \d+, iteration \d+"):
        train_probe(
            torch.randn(20, 3) * 1e30, torch.arange(20) % 2, kind="linear", epochs=50, lr=1e30, standardize=False
        )
    net = nn.Linear(3, 2)
    before = net.weight.detach().clone()
    data = [{"image": torch.full((4, 3), float("nan")), "label": torch.zeros(4, dtype=torch.long)}]
    trainer = SupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=data,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=nn.CrossEntropyLoss(),
        decollate=False,
    )
    NonFiniteLossGuard().attach(trainer)
    with pytest.raises(NonFiniteLossError, match="epoch 1, iteration 1"):
        trainer.run()
    torch.testing.assert_close(net.weight.detach(), before)  # stopped before backward and the step


def test_gradient_clipping_bounds_the_step():
    trainer, net = _trainer(_view_batches()[:1], clip_grad_norm=1e-3)
    before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    trainer.run()
    after = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert float(trainer.state.output["grad_norm"]) > 1e-3  # the norm before clipping
    step = float((after - before).norm())
    assert step == pytest.approx(0.01 * 1e-3, rel=0.01)  # SGD lr 0.01 times the clipped norm (float32 rounding)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        _trainer(_view_batches(), clip_grad_norm=0.0)
