import time

import pytest
import torch
from ignite.engine import Engine

from medssl_monai.engines import DataWaitTimer, EmbeddingHealth, EmbeddingWriter, EpochAverage, effective_rank


def test_effective_rank_extremes():
    assert effective_rank(torch.ones(50, 8)) == pytest.approx(1.0)
    rank_one = torch.randn(50, 1) @ torch.randn(1, 8)
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    # orthogonal directions of equal energy: effective rank = number of directions
    x = torch.cat([torch.eye(4), -torch.eye(4)]) * 3
    assert effective_rank(x) == pytest.approx(4.0, abs=1e-6)


def test_embedding_health_flags_collapse():
    torch.manual_seed(0)
    healthy = EmbeddingHealth.statistics(torch.randn(2000, 64))
    assert healthy["embedding_std_ratio"] == pytest.approx(1.0, abs=0.05)
    assert healthy["embedding_effective_rank"] > 50
    collapsed = EmbeddingHealth.statistics(torch.ones(100, 64) + 1e-7 * torch.randn(100, 64))
    assert collapsed["embedding_std_ratio"] < 1e-3
    assert EmbeddingHealth.statistics(torch.ones(10, 64))["embedding_effective_rank"] == pytest.approx(1.0)


def _engine(step_fn, data, handlers):
    engine = Engine(step_fn)
    for h in handlers:
        h.attach(engine)
    engine.run(data, max_epochs=1)
    return engine


def test_health_and_epoch_average_in_metrics():
    torch.manual_seed(0)
    outputs = [{"loss": torch.tensor(float(i)), "embedding": torch.randn(4, 16)} for i in range(5)]
    engine = _engine(lambda e, b: outputs[b], range(5), [EmbeddingHealth(max_samples=12), EpochAverage()])
    assert engine.state.metrics["train_loss_epoch"] == pytest.approx(2.0)
    assert {"embedding_std", "embedding_std_ratio", "embedding_effective_rank"} <= set(engine.state.metrics)


def test_data_wait_share():
    def slow_data():
        for i in range(4):
            time.sleep(0.05)
            yield i

    engine = _engine(lambda e, b: time.sleep(0.05), slow_data(), [DataWaitTimer()])
    assert 0.3 < engine.state.metrics["data_wait_share"] < 0.7


def test_embedding_writer_atomic_with_errors(tmp_path):
    batches = [
        {"id": ["a", "b"], "label": torch.tensor([0, 1]), "errors": [], "pred": torch.arange(6.0).reshape(2, 3)},
        {"errors": [("c", "ValueError: case 'c': image file 'c.nii' cannot be read")], "pred": None},
        {"id": ["d"], "label": torch.tensor([1]), "errors": [], "pred": torch.ones(1, 3)},
    ]
    _engine(lambda e, b: {"pred": b["pred"]}, batches, [EmbeddingWriter(tmp_path, "emb.csv")])
    lines = (tmp_path / "emb.csv").read_text().splitlines()
    assert lines == ["id,label,f0,f1,f2", "a,0,0.0,1.0,2.0", "b,1,3.0,4.0,5.0", "d,1,1.0,1.0,1.0"]
    assert "c,ValueError" in (tmp_path / "emb_errors.csv").read_text()
    assert not list(tmp_path.glob("*.tmp"))
