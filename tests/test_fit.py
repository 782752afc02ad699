"""The one fit loop (FitTrainer / fit): hooks, history, non-finite policy, autocast; every trainer uses it."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medssl_monai.apps.radiomics_deep_contrast import RadiomicsDeepTrainer
from medssl_monai.engines import FitTrainer, NonFiniteLossError, SSLTrainer, fit


def _pair(batch, device=None, non_blocking=False, **kwargs):
    return batch[0].to(device), batch[1].to(device)


def _data(n: int = 64, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=g)


def test_every_trainer_runs_the_same_iteration():
    """SSL, radiomics-deep and supervised training differ only in the compute-loss hook."""
    for cls in (SSLTrainer, RadiomicsDeepTrainer):
        assert issubclass(cls, FitTrainer)
        assert cls._iteration is FitTrainer._iteration
        assert cls.compute_loss is not FitTrainer.compute_loss


def test_fit_learns_and_records_loss_and_lr_history():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    epochs_seen = []
    engine = fit(
        net,
        nn.CrossEntropyLoss(),
        _data(),
        opt,
        5,
        prepare_batch=_pair,
        lr_scheduler=sched,
        on_epoch_completed=lambda e: epochs_seen.append(e.state.epoch),
    )
    history = engine.state.metrics["loss_history"]
    assert len(history) == 5 and history[-1] < 0.5 * history[0]
    assert engine.state.metrics["lr_history"] == [0.5, 0.5, 0.25, 0.25, 0.125]
    assert epochs_seen == [1, 2, 3, 4, 5] and engine.state.iteration == 5 * 4
    x, y = next(iter(_data(seed=1)))
    assert (net(x).argmax(1) == y).float().mean() > 0.9
    with pytest.raises(ValueError, match="epochs"):
        fit(net, nn.CrossEntropyLoss(), _data(), opt, 0, prepare_batch=_pair)


def test_fit_is_deterministic_under_a_seed():
    def run() -> torch.Tensor:
        torch.manual_seed(3)
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        fit(net, nn.CrossEntropyLoss(), _data(seed=5), torch.optim.Adam(net.parameters(), 1e-2), 3, prepare_batch=_pair)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


class _Counting(FitTrainer):
    """A method plugged in through the hooks only: regression loss, private outputs, a counter after each step."""

    steps_after = 0

    def compute_loss(self, engine, batchdata):
        x, y = self.to_device(batchdata[0]), self.to_device(batchdata[1]).float()
        with self.autocast():
            pred = engine.network(x)
        loss = ((pred.float().squeeze(1) - y) ** 2).mean()
        return loss, {"pred_dtype": str(pred.dtype), "_secret": pred}

    def loss_terms(self, engine, outputs):
        return {"squared_error": outputs["_secret"].float().mean()}

    def after_step(self, engine, batchdata, outputs):
        assert "_secret" in outputs
        type(self).steps_after += 1


def _counting(data, **kwargs) -> tuple[_Counting, nn.Module]:
    torch.manual_seed(0)
    net = nn.Linear(4, 1)
    trainer = _Counting(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=data,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=None,
        **kwargs,
    )
    _Counting.steps_after = 0
    return trainer, net


def test_hooks_private_outputs_and_after_step():
    trainer, _ = _counting(_data())
    trainer.run()
    assert _Counting.steps_after == 4
    assert "_secret" not in trainer.state.output and trainer.state.output["pred_dtype"] == "torch.float32"


def test_autocast_runs_the_forward_in_bfloat16_and_the_loss_in_float32():
    trainer, _ = _counting(_data(), autocast_dtype="bfloat16")
    trainer.run()
    assert trainer.state.output["pred_dtype"] == "torch.bfloat16"
    assert trainer.state.output["loss"].dtype == torch.float32
    with pytest.raises(ValueError, match="autocast_dtype"):
        _counting(_data(), autocast_dtype="int8")


def test_nonfinite_loss_raises_with_the_description_or_skips_without_after_step():
    x = torch.randn(32, 4)
    x[16:] = float("nan")  # the second of two batches
    data = [(x[:16], torch.zeros(16)), (x[16:], torch.zeros(16))]
    trainer, net = _counting(data, description="toy regression")
    with pytest.raises(NonFiniteLossError, match=r"in toy regression at epoch 1, iteration 2.*squared_error nan"):
        trainer.run()
    assert _Counting.steps_after == 1 and torch.isfinite(net.weight).all()
    trainer, net = _counting(data, nonfinite="skip")
    trainer.run()
    assert _Counting.steps_after == 1 and trainer.state.metrics["nonfinite_steps"] == 1
    assert torch.isfinite(net.weight).all()
