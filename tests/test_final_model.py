"""FinalModelSaver: MONAI's final-model format, written atomically."""

from __future__ import annotations

import os

import pytest
import torch
from ignite.engine import Engine
from monai.handlers import CheckpointSaver

from medssl_monai.engines import FinalModelSaver


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def _run(handler, tmp_engine_data=(0,)):
    engine = Engine(lambda e, b: None)
    handler.attach(engine)
    engine.run(list(tmp_engine_data), max_epochs=1)


def test_same_file_as_monai_checkpoint_saver(tmp_path):
    net = _net(0)
    _run(CheckpointSaver(str(tmp_path / "monai"), {"model": net}, save_final=True, final_filename="model.pt"))
    _run(FinalModelSaver(tmp_path / "ours", {"model": net}))
    theirs = torch.load(tmp_path / "monai" / "model.pt", weights_only=True)
    ours = torch.load(tmp_path / "ours" / "model.pt", weights_only=True)
    assert list(ours) == list(theirs) == list(net.state_dict())  # bare state_dict, loadable by load_state_dict
    for key in ours:
        assert torch.equal(ours[key], theirs[key])


def test_wrapper_unwrapped_and_several_objects_named(tmp_path):
    net, head = _net(0), _net(1)
    saver = FinalModelSaver(tmp_path, {"model": torch.nn.DataParallel(net)})
    assert list(saver.state()) == list(net.state_dict())  # no "module." prefix
    both = FinalModelSaver(tmp_path, {"model": net, "head": head}).state()
    assert set(both) == {"model", "head"} and torch.equal(both["head"]["0.weight"], head.state_dict()["0.weight"])


def test_failed_write_keeps_previous_model(tmp_path, monkeypatch):
    old = _net(0)
    FinalModelSaver(tmp_path, {"model": old}).save()
    before = (tmp_path / "model.pt").read_bytes()

    def killed(fd):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(FinalModelSaver(tmp_path, {"model": _net(1)}))
    assert (tmp_path / "model.pt").read_bytes() == before  # MONAI's saver deletes it before writing in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary file left behind


def test_empty_save_dict_refused(tmp_path):
    with pytest.raises(ValueError, match="save_dict is empty"):
        FinalModelSaver(tmp_path, {})
