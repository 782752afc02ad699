"""Workflow tests of the small_data_ssl bundle on synthetic 2D data (train, resume, evaluate, bad input), and of its
evaluation pieces: MLP / linear probes, t-SNE, the Tables 2-3 report and the batch-size ablation plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REPO, bundle_workflow
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from torch import nn

from medssl_monai.apps.small_data_ssl import (
    batch_size_ablation,
    load_records,
    plot_batch_size_ablation,
    small_data_markdown,
    write_combined_report,
    write_small_data_results,
)
from medssl_monai.data import datalists_2d, make_image_2d, synthetic_2d_datalist
from medssl_monai.evaluation import build_probe, plot_tsne, probe_evaluate, train_probe
from medssl_monai.networks import resnet_backbone

BUNDLE = REPO / "bundles" / "small_data_ssl"
CONFIGS = BUNDLE / "configs"
FAST = {
    "backbone": "resnet18",
    "num_workers": 0,
    "batch_size": 8,
    "synthetic": {"n": 40, "size": 32, "n_classes": 2},
    "device": "cpu",
}
PNG = b"\x89PNG\r\n\x1a\n"


def _workflow(name: str, **override) -> ConfigWorkflow:
    return bundle_workflow(CONFIGS, name, **override)


def _chain(err: BaseException | None) -> list[str]:
    """The messages of an exception and of its causes (MONAI wraps errors raised while instantiating a component)."""
    texts = []
    while err is not None:
        texts.append(str(err))
        err = err.__cause__ or err.__context__
    return texts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of SimSiam (the method with a predictor) on 40 synthetic images: the run folder."""
    out = tmp_path_factory.mktemp("train")
    wf = _workflow("train", **FAST, method="simsiam", epochs=1, output_dir=str(out))
    assert not wf.check_properties()
    losses: list[float] = []
    wf.trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    wf.run()
    wf.finalize()
    assert len(losses) == 28 // 8  # 70% of 40 = 28 train images, drop_last
    assert all(-1.0 - 1e-5 <= v <= 1.0 + 1e-5 for v in losses)  # negative cosine
    return out


def test_metadata_has_mandatory_keys():
    meta = json.loads((CONFIGS / "metadata.json").read_text(encoding="utf-8"))
    for key in ("version", "monai_version", "pytorch_version", "numpy_version", "task", "description", "authors"):
        assert isinstance(meta[key], str) and meta[key], key
    assert meta["version"] in meta["changelog"]
    assert "medssl-monai" in meta["required_packages_version"]
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 1
    for name in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (BUNDLE / name).is_file(), name


def test_train_writes_loadable_backbone_tensorboard_and_checkpoints(trained):
    state = torch.load(trained / "models" / "model.pt", weights_only=True)
    net = resnet_backbone("resnet18")
    net.load_state_dict(state)  # the backbone alone, no projector / predictor keys
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 512)
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    assert list((trained / "checkpoints").glob("checkpoint_epoch=1.pt"))
    run = json.loads((trained / "checkpoints" / "run_config.json").read_text(encoding="utf-8"))
    assert run["method"] == "simsiam" and run["backbone"] == "resnet18" and run["batch_size"] == 8


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    wf = _workflow("train", **FAST, method="simclr", epochs=2, output_dir=str(out))
    wf.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())  # killed after epoch 1
    wf.run()
    wf.finalize()
    wf = _workflow("train", **FAST, method="simclr", epochs=2, output_dir=str(out))
    epochs: list[int] = []
    wf.trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
    wf.run()
    wf.finalize()
    assert epochs == [2]  # epoch 1 came from the checkpoint
    assert (out / "models" / "model.pt").is_file()
    with pytest.raises(Exception) as err:  # same folder, other method: refused
        _workflow("train", **FAST, method="dcl", epochs=2, output_dir=str(out)).run()
    assert any("different run (method: 'simclr' -> 'dcl')" in text for text in _chain(err.value))


def test_evaluate_writes_tables_tsne_and_supervised(trained, tmp_path):
    out = tmp_path / "eval"
    wf = _workflow(
        "evaluate",
        ckpt=str(trained / "models" / "model.pt"),
        output_dir=str(out),
        probe={"epochs": 3, "lr": 0.001, "batch_size": 16},
        run_supervised=True,
        supervised_epochs=1,
        device="cpu",
    )
    wf.run()
    wf.finalize()
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    evaluations = [r["evaluation"] for r in doc["records"]]
    assert evaluations == ["knn_euclidean", "knn_cosine", "mlp", "linear", "supervised"]
    for r in doc["records"]:
        assert r["split"] == "test" and r["n_test"] == 8 and r["dataset"] == "synthetic"
        assert set(r["metrics"]) == {"accuracy", "f1_weighted"}
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values())
    assert doc["records"][0]["method"] == "simsiam" and doc["records"][0]["k"] == 28  # k=200 clipped to 28
    assert doc["header"]["metric_names"]["f1_weighted"].startswith("weighted F1")
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "| SimSiam (batch 8, 1 epoch) |" in md and "| Supervised from scratch (1 epoch) |" in md
    assert (out / "tsne.png").read_bytes().startswith(PNG)
    feats = np.load(out / "features.npz")
    assert feats["train_features"].shape == (28, 512) and feats["test_labels"].shape == (8,)


def test_training_checkpoint_loads_as_backbone_and_wrong_backbone_is_refused(trained):
    from medssl_monai.apps.small_data_ssl import load_backbone

    reference = torch.load(trained / "models" / "model.pt", weights_only=True)
    net = load_backbone(resnet_backbone("resnet18"), trained / "checkpoints" / "checkpoint_epoch=1.pt")
    assert all(torch.equal(v, reference[k]) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="does not fit the evaluation backbone"):
        load_backbone(resnet_backbone("resnet10"), trained / "models" / "model.pt")


def test_unknown_method_is_a_clear_error(tmp_path):
    with pytest.raises(Exception) as err:
        _workflow("train", **FAST, method="byol", epochs=1, output_dir=str(tmp_path)).run()
    assert any("unknown SSL method 'byol'" in text for text in _chain(err.value))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope" / "model.pt"
    with pytest.raises(Exception) as err:
        _workflow("evaluate", ckpt=str(missing), output_dir=str(tmp_path / "e")).run()
    assert any("not found" in text and str(missing) in text for text in _chain(err.value))


def test_synthetic_2d_is_deterministic_split_and_class_dependent():
    a, b = synthetic_2d_datalist(n=20, seed=3), synthetic_2d_datalist(n=20, seed=3)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert a[0]["image"].shape == (1, 32, 32) and 0.0 <= a[0]["image"].min() and a[0]["image"].max() <= 1.0
    # a disk (class 0) is bright at its centre, a ring (class 1) dark: compare mean intensity of the inner region
    disks = np.mean([make_image_2d(0, 32, (0, i))[0, 12:20, 12:20].mean() for i in range(10)])
    rings = np.mean([make_image_2d(1, 32, (0, i))[0, 12:20, 12:20].mean() for i in range(10)])
    assert disks > rings + 0.2
    parts = datalists_2d(None, seed=0, synthetic={"n": 50})
    assert [len(parts[s]) for s in ("train", "val", "test")] == [35, 5, 10]


def _blobs(n: int = 200, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 3.0, -3.0)  # linearly separable along axis 0
    return x, y


def test_probes_separate_toy_features_and_are_what_they_say():
    x, y = _blobs()
    for kind in ("linear", "mlp"):
        res = probe_evaluate(x[:150], y[:150], x[150:], y[150:], kind=kind, epochs=20, lr=0.01)
        assert res["accuracy"] >= 0.95 and res["f1_weighted"] >= 0.95, (kind, res)
    linear = build_probe("linear", 16, 3)
    assert isinstance(linear, nn.Linear) and linear.out_features == 3
    mlp = build_probe("mlp", 16, 3, hidden_features=8)
    assert [type(m) for m in mlp] == [nn.Linear, nn.ReLU, nn.Linear] and mlp[0].out_features == 8
    with pytest.raises(ValueError, match="probe kind"):
        build_probe("svm", 16, 3)


def test_probe_steplr_halves_every_25_epochs_and_is_deterministic():
    x, y = _blobs(n=40)
    probe = train_probe(x, y, kind="linear", epochs=100, lr=0.01, batch_size=40)
    expected = [0.01 * 0.5 ** (e // 25) for e in range(100)]
    assert np.allclose(probe.lr_history, expected)
    again = train_probe(x, y, kind="linear", epochs=100, lr=0.01, batch_size=40)
    assert torch.equal(probe.network.weight, again.network.weight)
    assert probe.loss_history[-1] < probe.loss_history[0]
    with pytest.raises(ValueError, match="two classes"):
        train_probe(x, np.zeros(40), kind="linear")


def test_tsne_png_written(tmp_path):
    x, y = _blobs(n=60)
    xy = plot_tsne(x, y, tmp_path / "t.png", class_names=["benign", "malignant"])
    assert xy.shape == (60, 2) and np.isfinite(xy).all()
    assert (tmp_path / "t.png").read_bytes().startswith(PNG)


def _record(method: str, batch: int, acc: float, evaluation: str = "knn_euclidean", dataset: str = "breastmnist"):
    return {
        "method": method,
        "dataset": dataset,
        "batch_size": batch,
        "evaluation": evaluation,
        "split": "test",
        "metrics": {"accuracy": acc, "f1_weighted": acc - 0.01},
    }


def test_batch_size_ablation_plot_from_run_records(tmp_path):
    records = [
        _record(m, b, 0.7 + 0.01 * i + 0.001 * b) for i, m in enumerate(("simclr", "vicreg")) for b in (16, 32, 64)
    ]
    records.append(_record("simclr", 16, 0.5, evaluation="mlp"))  # other evaluation: ignored
    for i, r in enumerate(records):  # one results.json per run, as evaluate.json writes them
        write_small_data_results([r], {}, tmp_path / f"run{i}")
    loaded = load_records(str(tmp_path / "run*" / "results.json"))
    assert len(loaded) == 7
    table = plot_batch_size_ablation(str(tmp_path / "run*" / "results.json"), tmp_path / "fig3.png")
    assert table == {
        "simclr": {16: pytest.approx(0.716), 32: pytest.approx(0.732), 64: pytest.approx(0.764)},
        "vicreg": {16: pytest.approx(0.726), 32: pytest.approx(0.742), 64: pytest.approx(0.774)},
    }
    assert (tmp_path / "fig3.png").read_bytes().startswith(PNG)
    paths = write_combined_report(
        str(tmp_path / "run*" / "results.json"),
        tmp_path / "report",
        ablation=True,
        ablation_evaluations=["knn_euclidean", "mlp"],
    )
    assert paths["ablation_table"]["mlp"] == {"simclr": {16: 0.5}}
    combined = json.loads((tmp_path / "report" / "batch_size_ablation.json").read_text(encoding="utf-8"))
    assert combined["knn_euclidean"]["vicreg"]["64"] == pytest.approx(0.774)
    assert (tmp_path / "report" / "batch_size_ablation_mlp.png").read_bytes().startswith(PNG)
    assert "| SimCLR (batch 16) |" in (tmp_path / "report" / "results.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="same seed"):
        batch_size_ablation([*records, _record("simclr", 16, 0.1)])
    with pytest.raises(FileNotFoundError):
        load_records(str(tmp_path / "absent.json"))


def test_markdown_has_the_papers_table_layout():
    md = small_data_markdown(
        [_record("vicreg", 16, 0.8375), _record("simclr", 16, 0.8), _record("dcl", 16, 0.9, dataset="kather")]
    )
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Method"))
    assert lines[header] == "| Method \\ Dataset | breastmnist | kather |"
    assert lines[header + 2 : header + 5] == [
        "| DCL (batch 16) | - | 0.900 / 0.890 |",
        "| SimCLR (batch 16) | 0.800 / 0.790 | - |",
        "| VICReg (batch 16) | 0.838 / 0.828 | - |",
    ]
    summary = lines[lines.index("## Summary: breastmnist") + 1 :]
    assert summary[1] == "| Run | KNN Euclidean |" and summary[3] == "| SimCLR (batch 16) | 0.800 / 0.790 |"


def test_several_seeds_give_mean_and_sample_std():
    accs = (0.70, 0.80, 0.75)
    seeds = [{**_record("simclr", 16, a, evaluation="linear"), "seed": s} for s, a in enumerate(accs)]
    md = small_data_markdown([*seeds, {**_record("vicreg", 16, 0.9, evaluation="linear"), "seed": 0}])
    # mean 0.750, sample std (ddof 1) of (0.70, 0.80, 0.75) = 0.05; F1 = accuracy - 0.01
    assert "| SimCLR (batch 16, 3 seeds) | 0.750 ± 0.050 / 0.740 ± 0.050 |" in md.splitlines()
    assert "| VICReg (batch 16) | 0.900 / 0.890 |" in md.splitlines()  # one seed: the plain cell
    knn = [{**_record("simclr", 16, a), "seed": s} for s, a in enumerate(accs)]
    assert batch_size_ablation(knn) == {"simclr": {16: pytest.approx(0.75)}}
    with pytest.raises(ValueError, match="same seed 1"):
        small_data_markdown([*seeds, seeds[1]])


def test_inference_exports_one_embedding_per_image(trained, tmp_path):
    wf = _workflow("inference", ckpt=str(trained / "models" / "model.pt"), output_dir=str(tmp_path), device="cpu")
    wf.run()
    wf.finalize()
    lines = (tmp_path / "embeddings.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["id", "label"] and len(header) == 2 + 512  # ResNet-18 features, with the class label
    assert len(lines) - 1 == 40  # every split of the 40 synthetic images the run trained on (run_config.json)


def test_run_config_of_a_training_run_or_beside_a_shipped_model(tmp_path):
    from medssl_monai.apps.small_data_ssl import read_run_config

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "models" / "model.pt").write_bytes(b"")
    assert read_run_config(run / "models" / "model.pt") == {}
    (run / "models" / "run_config.json").write_text('{"backbone": "resnet18"}')  # how a bundle ships its model
    assert read_run_config(run / "models" / "model.pt") == {"backbone": "resnet18"}
    (run / "checkpoints" / "run_config.json").write_text('{"backbone": "resnet50"}')  # the training run's own wins
    assert read_run_config(run / "models" / "model.pt") == {"backbone": "resnet50"}
    with pytest.raises(FileNotFoundError, match="not found"):
        read_run_config(run / "models" / "absent.pt")
