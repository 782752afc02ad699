"""Workflow tests of the 3dsiam bundle on synthetic phantoms: train, resume, inference, load, export."""

from __future__ import annotations

import csv
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE_3DSIAM, bundle_workflow
from ignite.engine import Events
from monai.bundle import ConfigWorkflow, ckpt_export, load, verify_net_in_out

from medssl_monai.evaluation import fit_linear_head
from medssl_monai.monailabel import BundleEncoder
from medssl_monai.networks import SiamEncoder3D

CONFIGS = BUNDLE_3DSIAM / "configs"
FAST = {
    "num_workers": 0,
    "batch_size": 4,
    "roi_size": [28, 28, 28],
    "synthetic#n": 12,
    "synthetic#size": [32, 32, 32],
    "device": "cpu",
}


def _workflow(name: str, output_dir, **override) -> ConfigWorkflow:
    return bundle_workflow(CONFIGS, name, **{**FAST, "output_dir": str(output_dir), **override})


def _iterations_run(trainer) -> list[int]:
    done: list[int] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: done.append(e.state.iteration))
    return done


def test_metadata_has_mandatory_keys():
    import json

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for key in (
        "version",
        "monai_version",
        "pytorch_version",
        "numpy_version",
        "task",
        "description",
        "authors",
        "copyright",
    ):
        assert isinstance(meta[key], str) and meta[key], key
    assert meta["version"] in meta["changelog"]
    assert isinstance(meta["required_packages_version"], dict) and "medssl-monai" in meta["required_packages_version"]
    image = meta["network_data_format"]["inputs"]["image"]
    assert image["num_channels"] == 1 and image["spatial_shape"] == ["*", "*", "*"]
    latent = meta["network_data_format"]["outputs"]["pred"]
    assert latent["type"] == "latent" and latent["num_channels"] == 256


def test_train_workflow_one_epoch(tmp_path):
    wf = _workflow("train", tmp_path, epochs=1)
    assert not wf.check_properties()
    assert wf.bundle_root == str(BUNDLE_3DSIAM.resolve())  # derived from the config file's location
    trainer = wf.trainer
    done = _iterations_run(trainer)
    losses: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    wf.run()
    wf.finalize()
    assert done == [1, 2, 3]  # 12 phantoms, batch 4, drop_last
    assert losses[-1] < losses[0]  # SimSiam's loss falls fast at the start
    metrics = trainer.state.metrics
    assert float(metrics["train_loss_epoch"]) == pytest.approx(np.mean(losses), abs=1e-5)
    assert 0.1 < metrics["embedding_std_ratio"] < 1.5 and 0 <= metrics["data_wait_share"] < 1
    model = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert set(model) == set(SiamEncoder3D().state_dict())
    ckpt = torch.load(tmp_path / "checkpoints" / "checkpoint_epoch=1.pt", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "lr_scheduler", "trainer", "rng"}
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def _lr_per_epoch(wf) -> list[float]:
    lrs: list[float] = []
    optimizer = wf.parser.get_parsed_content("optimizer")
    wf.trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: lrs.append(optimizer.param_groups[0]["lr"]))
    return lrs


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    unbroken = _workflow("train", tmp_path / "unbroken", epochs=3)
    unbroken_lrs = _lr_per_epoch(unbroken)
    unbroken.run()
    assert unbroken_lrs == pytest.approx([0.001, 0.00075, 0.00025])  # cosine over 3 epochs from lr 1e-3

    first = _workflow("train", tmp_path / "run", epochs=3)
    first.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())  # "killed" after epoch 1
    first.run()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "checkpoint_epoch=1.pt", weights_only=True)

    again = _workflow("train", tmp_path / "run", epochs=3)  # the same command again
    trainer = again.trainer
    restored = {}
    optimizer = again.parser.get_parsed_content("optimizer")
    trainer.add_event_handler(
        Events.EPOCH_STARTED(once=2),
        lambda e: restored.update(
            weight=again.parser.get_parsed_content("ssl_network").backbone.conv6[0].weight.detach().clone(),
            adam_steps=float(next(iter(optimizer.state.values()))["step"]),
        ),
    )
    resumed_lrs = _lr_per_epoch(again)
    done = _iterations_run(trainer)
    again.run()
    assert done == [4, 5, 6, 7, 8, 9]  # epochs 2 and 3 only
    assert trainer.state.epoch == 3
    torch.testing.assert_close(restored["weight"], saved["model"]["backbone.conv6.0.weight"])
    assert restored["adam_steps"] == 3.0  # optimizer state came back too
    assert resumed_lrs == pytest.approx(unbroken_lrs[1:])  # the schedule continues as if never stopped
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt")) == [
        "checkpoint_epoch=2.pt",
        "checkpoint_epoch=3.pt",
    ]


def test_resume_with_other_settings_is_refused(tmp_path):
    _workflow("train", tmp_path, epochs=1).run()
    other = _workflow("train", tmp_path, epochs=1, seed=1)
    with pytest.raises(Exception) as err:
        other.run()
    assert re.search(r"different run \(seed: 0 -> 1\).*--output_dir", _messages(err.value))


def test_same_seed_same_training(tmp_path):
    weights = []
    for run in ("a", "b"):
        wf = _workflow("train", tmp_path / run, epochs=1)
        wf.run()
        weights.append(torch.load(tmp_path / run / "models" / "model.pt", weights_only=True))
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])


@pytest.fixture(scope="module")
def trained_encoder(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("trained")
    wf = _workflow("train", out, epochs=1)
    wf.run()
    return str(out / "models" / "model.pt")


def test_inference_writes_one_embedding_per_case(tmp_path, trained_encoder):
    wf = _workflow("inference", tmp_path, ckpt=trained_encoder)
    assert not wf.check_properties()
    wf.run()
    rows = list(csv.reader((tmp_path / "embeddings.csv").open()))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["id", "label", "f0"] and len(header) == 2 + 256
    assert [r[0] for r in body] == [f"phantom_{i:04d}" for i in range(12)]
    assert not (tmp_path / "embeddings_errors.csv").exists()
    # deterministic: same encoder, same data, same embeddings
    wf2 = _workflow("inference", tmp_path / "again", ckpt=trained_encoder)
    wf2.run()
    again = list(csv.reader((tmp_path / "again" / "embeddings.csv").open()))
    np.testing.assert_allclose(np.array(again[1:])[:, 2:].astype(float), np.array(body)[:, 2:].astype(float), 1e-5)

    # with a classifier head (inference.json's "classifier"): class probabilities and the prediction per case
    z = np.array(body)[:, 2:].astype(float)
    labels = np.array([int(r[1]) for r in body])
    head = fit_linear_head(z, labels, ["benign", "malignant"])
    head.save(tmp_path / "head.pt")
    wf3 = _workflow("inference", tmp_path / "cls", ckpt=trained_encoder, classifier=str(tmp_path / "head.pt"))
    wf3.run()
    header3, *rows3 = csv.reader((tmp_path / "cls" / "embeddings.csv").open())
    assert header3[-3:] == ["p_benign", "p_malignant", "prediction"] and header3[: 2 + 256] == header
    probs = np.array([r[-3:-1] for r in rows3], dtype=float)
    expected = head(torch.as_tensor(z, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    assert [r[-1] for r in rows3] == [["benign", "malignant"][i] for i in expected.argmax(1)]


def test_inference_finishes_good_cases_and_reports_bad_ones(tmp_path, trained_encoder):
    data = tmp_path / "data"
    for i, kind in enumerate(["good", "corrupt", "empty", "good"]):
        (data / "images").mkdir(parents=True, exist_ok=True)
        (data / "masks").mkdir(parents=True, exist_ok=True)
        mask = np.zeros((40, 40, 40), np.uint8)
        if kind != "empty":
            mask[15:25, 15:25, 15:25] = 1
        nib.save(
            nib.Nifti1Image(np.random.rand(40, 40, 40).astype(np.float32), np.eye(4)),
            str(data / "images" / f"case{i}.nii.gz"),
        )
        nib.save(nib.Nifti1Image(mask, np.eye(4)), str(data / "masks" / f"case{i}.nii.gz"))
        if kind == "corrupt":
            (data / "images" / f"case{i}.nii.gz").write_bytes(b"garbage")
    out = tmp_path / "out"
    wf = _workflow("inference", out, ckpt=trained_encoder, dataset_dir=str(data), batch_size=2, roi_size=[32] * 3)
    wf.run()
    ids = [r[0] for r in csv.reader((out / "embeddings.csv").open())][1:]
    assert ids == ["case0", "case3"]
    errors = {r[0]: r[1] for r in list(csv.reader((out / "embeddings_errors.csv").open()))[1:]}
    assert set(errors) == {"case1", "case2"}
    assert "cannot be read" in errors["case1"] and "case1.nii.gz" in errors["case1"]
    assert "empty" in errors["case2"]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    # the MONAI Label task's encoder (medssl_monai.monailabel) embeds a file as inference.json does
    encoder = BundleEncoder(BUNDLE_3DSIAM, ckpt=trained_encoder, overrides={"roi_size": [32] * 3})
    header, *rows = csv.reader((out / "embeddings.csv").open())
    row = next(r for r in rows if r[0] == "case3")
    z = encoder(data / "images" / "case3.nii.gz", data / "masks" / "case3.nii.gz")
    np.testing.assert_allclose(z.numpy(), np.array(row[header.index("f0") :], dtype=float), rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="roi_sise"):
        BundleEncoder(BUNDLE_3DSIAM, ckpt=trained_encoder, overrides={"roi_sise": [32] * 3})


def _messages(err: BaseException) -> str:
    """All messages of an exception chain (MONAI's config parser wraps the error a component raised)."""
    out = []
    while err is not None:
        out.append(str(err))
        err = err.__cause__
    return "\n".join(out)


def test_bad_overrides_give_clear_errors(tmp_path):
    wf = _workflow("train", tmp_path, epochs=1, dataset_dir=str(tmp_path / "missing"))
    with pytest.raises(Exception) as err:
        wf.run()
    assert re.search(r"dataset_dir '.*missing' does not exist", _messages(err.value))
    np.savez(tmp_path / "flat.npz", train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.zeros((4, 1)))
    wf = _workflow("train", tmp_path / "o2", epochs=1, dataset_dir=str(tmp_path / "flat.npz"))
    with pytest.raises(Exception) as err:
        wf.run()
    assert re.search(
        r"case 'train_00000'.*flat.npz.*has 2 dimensions \(shape \(28, 28\)\).*needs 3D volumes", _messages(err.value)
    )
    assert not (tmp_path / "o2" / "models").exists()


def test_bundle_load_round_trip(tmp_path):
    bundle = tmp_path / "3dsiam"
    shutil.copytree(BUNDLE_3DSIAM / "configs", bundle / "configs")
    (bundle / "models").mkdir()
    torch.manual_seed(7)
    reference = SiamEncoder3D()
    torch.save(reference.state_dict(), bundle / "models" / "model.pt")
    encoder = load(name="3dsiam", bundle_dir=str(tmp_path), device="cpu")
    assert isinstance(encoder, SiamEncoder3D)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[key], value)


def test_verify_net_in_out_and_ckpt_export(tmp_path, trained_encoder):
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        any=32,
    )
    ts = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=trained_encoder,
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
    )
    scripted = torch.jit.load(str(ts))
    encoder = SiamEncoder3D().eval()
    encoder.load_state_dict(torch.load(trained_encoder, weights_only=True))
    x = torch.rand(1, 1, 30, 30, 30) * 255
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), encoder(x))


@pytest.mark.parametrize("mode", ["re", "se"])
def test_train_with_imbalance_handling(tmp_path, mode):
    """Plain first epoch, RE weights / SE-selected batches of m afterwards, same number of steps per epoch."""
    wf = _workflow("train", tmp_path, epochs=2, imbalance=mode, k=2, q=5, m=4, **{"synthetic#n": 16})
    seen: list[tuple[int, int, bool]] = []
    wf.trainer.add_event_handler(
        Events.ITERATION_STARTED,
        lambda e: seen.append((e.state.epoch, len(e.state.batch["view1"]), "weight" in e.state.batch)),
    )
    wf.run()
    wf.finalize()
    assert [s[0] for s in seen] == [1] * 4 + [2] * 4  # 16 cases / batch 4 (plain) or m = 4 (SE) per epoch
    assert all(size == 4 for _, size, _ in seen)
    assert [w for _, _, w in seen] == [False] * 4 + [mode == "re"] * 4
    metrics = wf.trainer.state.metrics
    assert 0 < metrics["imbalance_minority_share"] <= 1 and 0 < metrics["imbalance_candidate_minority_share"] < 0.5


@pytest.mark.slow
def _evaluate_workflow(output_dir, **override) -> ConfigWorkflow:
    """evaluate.json on 28^3 phantoms, one epoch per pre-training, no loader processes; ``override`` on top."""
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "evaluate.json"),
        workflow_type=None,
        logging_file=False,
        output_dir=str(output_dir),
        **{"epochs": 1, "num_workers": 0, "roi_size": [28, 28, 28], "synthetic#size": [28, 28, 28], **override},
    )
    wf.initialize()
    return wf


def test_evaluate_workflow_runs_the_whole_protocol(tmp_path):
    """evaluate.json on phantoms: 4 pre-trainings (3DSiam, SE, RE, Rubik's cube), embeddings, radiomics, Table 1 with
    the supervised row, plots."""
    import json

    wf = _evaluate_workflow(
        tmp_path,
        **{"synthetic#n": 30, "evaluate#diagnostic": {"ks": [2], "q": 5, "m": 4, "n_batches": 20}},
    )
    wf.run()
    wf.finalize()
    for mode in ("none", "se", "re", "rubik"):
        assert (tmp_path / "pretrain" / mode / "models" / "model.pt").is_file()
        assert len((tmp_path / "pretrain" / mode / "embeddings.csv").read_text().splitlines()) == 31
    document = json.loads((tmp_path / "results.json").read_text())
    rows = [r["feature_set"] for r in document["records"] if r["label_fraction"] == 1.0]
    assert rows == [
        "Trad. radiomics",
        "Rubik's cube",
        "3DSiam",
        "3DSiam+SE",
        "3DSiam+RE",
        "Trad.+3DSiam",
        "Trad.+3DSiam+SE",
        "Trad.+3DSiam+RE",
        "Supervised",
    ]
    assert {r["label_fraction"] for r in document["records"]} == {1.0, 0.5}
    for record in document["records"]:
        for metric in ("sensitivity", "specificity", "auc"):
            assert len(record["metrics"][metric]["folds"]) == 5
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| Trad.+3DSiam+SE |" in markdown and "Suppl. Table 3" in markdown and "Fig. 2" in markdown
    for name in ("roc.png", "correlation_density.png", "radiomics.csv", "analysis.json"):
        assert (tmp_path / name).stat().st_size > 0
    a = torch.load(tmp_path / "pretrain" / "none" / "models" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "pretrain" / "se" / "models" / "model.pt", weights_only=True)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # SE trained on other batches


def test_evaluate_protocol_skips_variants_and_their_rows(tmp_path):
    """evaluate.json runs one Python entry point; --skip leaves variants (and their rows and curves) out."""
    import json

    wf = _evaluate_workflow(
        tmp_path,
        skip=["se", "re", "rubik"],
        **{
            "synthetic#n": 20,
            "evaluate#supervised": None,
            "evaluate#label_fractions": [1.0],
            "evaluate#diagnostic": {"ks": [2], "q": 5, "m": 4, "n_batches": 5},
        },
    )
    wf.run()
    wf.finalize()
    assert sorted(p.name for p in (tmp_path / "pretrain").iterdir()) == ["none"]
    document = json.loads((tmp_path / "results.json").read_text())
    assert [r["feature_set"] for r in document["records"]] == ["Trad. radiomics", "3DSiam", "Trad.+3DSiam"]
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert list(analysis["correlation_density"]) == ["3DSiam"]
    bad = _evaluate_workflow(tmp_path / "bad", skip=["nope"])
    with pytest.raises(RuntimeError) as excinfo:
        bad.run()
    assert "skip names ['nope'] are not variants" in str(excinfo.value.__cause__)


def test_shipped_encoder_loads_with_the_bundle_api():
    """bundles/3dsiam/models/model.pt: a real pre-trained encoder, under 10 MB, provenance in the metadata."""
    import json

    path = BUNDLE_3DSIAM / "models" / "model.pt"
    assert path.stat().st_size < 10 * 2**20
    encoder = load(name="3dsiam", bundle_dir=str(BUNDLE_3DSIAM.parent), device="cpu")
    assert isinstance(encoder, SiamEncoder3D)
    saved = torch.load(path, weights_only=True)
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, saved[key])
    assert any(v.float().abs().sum() > 0 and "running_mean" in k for k, v in saved.items())  # trained BN statistics
    metadata = json.loads((CONFIGS / "metadata.json").read_text())
    assert {"data", "command", "epochs", "seed", "imbalance"} <= set(metadata["pretrained_weights"])
    encoder.eval()
    with torch.no_grad():
        z = encoder(torch.rand(8, 1, 28, 28, 28) * 255)
    assert z.shape == (8, 256) and torch.isfinite(z).all() and z.std(0).mean() > 0
