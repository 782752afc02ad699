"""The radiomics_deep_contrast bundle (Zhao & Yang, MICCAI 2021): the two-branch network, the memory-bank training
step, grouped cross-validation, the radiomics pipeline's feature selection, weighted F1, and the train.json /
evaluate.json workflows on synthetic phantoms with masks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import REPO, bundle_workflow
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from monai.data import DataLoader
from torch import nn
from torch.nn import functional as F

from medssl_monai.apps.radiomics_deep_contrast import (
    PAPER_FREEZE,
    FineTuneClassifier,
    RadiomicsDeepTrainer,
    add_weighted_f1,
)
from medssl_monai.evaluation import LinearSVMClassifier, stratified_splits
from medssl_monai.losses import RadiomicsDeepNCELoss
from medssl_monai.networks import (
    HybridClassifier,
    ImageClassifier,
    MemoryBank,
    RadiomicsDeepNetwork,
    RadiomicsMLP,
    Standardize,
    deep_branch,
)
from medssl_monai.radiomics import attach_radiomics, radiomics_params, write_feature_csv
from medssl_monai.transforms import ForegroundMaskd

BUNDLE = REPO / "bundles" / "radiomics_deep_contrast"
CONFIGS = BUNDLE / "configs"

# ------------------------------------------------------------------------------------------------------- network


def test_standardize_by_hand():
    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0]])
    s = Standardize(3).fit(x)
    torch.testing.assert_close(s.mean, torch.tensor([2.0, 5.0, 3.0]))
    torch.testing.assert_close(s.std, torch.tensor([1.0, 1.0, 1.0]))  # constant column: std 0 -> 1
    out = s(torch.tensor([[3.0, 5.0, 2.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, -1.0]]))
    with pytest.raises(ValueError, match="expected 3 radiomics features"):
        s(torch.zeros(1, 4))
    assert set(s.state_dict()) == {"mean", "std"}


def test_two_views_shapes_and_unit_norm():
    torch.manual_seed(0)
    net = RadiomicsDeepNetwork(deep_branch("resnet18", in_channels=10), RadiomicsMLP(20, mean=np.ones(20)))
    out = net(torch.rand(3, 10, 32, 32), torch.randn(3, 20))
    assert set(out) == {"deep", "radiomics"}
    for v in out.values():
        assert v.shape == (3, 128)
        torch.testing.assert_close(v.norm(dim=1), torch.ones(3))
    linear = [m for m in net.radiomics_branch.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(20, 512), (512, 256), (256, 128)]  # three FC
    assert net.image_branch.fc.in_features == 512  # ResNet-18 GAP features
    hybrid = HybridClassifier(net, num_classes=3)
    assert hybrid(torch.rand(2, 10, 32, 32), torch.randn(2, 20)).shape == (2, 3)
    names = [n for n, _ in hybrid.named_parameters()]
    for prefix in PAPER_FREEZE:  # every frozen group of the paper exists in the hybrid
        assert any(n.startswith(prefix) for n in names), prefix
    assert ImageClassifier("resnet18", 10, 2)(torch.rand(2, 10, 32, 32)).shape == (2, 2)
    with pytest.raises(ValueError, match="radiomics branch"):
        net(torch.rand(2, 10, 32, 32))


# --------------------------------------------------------------------------------------------- the training step


class _Tiny(nn.Module):
    """Linear image and radiomics branches: small enough to check one step by hand."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = RadiomicsDeepNetwork(nn.Sequential(nn.Flatten(), nn.Linear(8, 4)), nn.Linear(5, 4))
        self.seen: dict[str, torch.Tensor] = {}

    def forward(self, image, radiomics):
        out = self.net(image, radiomics)
        self.seen = {k: v.detach().clone() for k, v in out.items()}
        return out


def test_one_step_updates_both_banks_with_momentum_by_hand():
    n = 6
    data = [{"image": torch.randn(2, 2, 2), "radiomics": torch.randn(5), "index": i} for i in range(n)]
    batch_rows = [1, 4, 5]
    loader = DataLoader([data[i] for i in batch_rows], batch_size=3, shuffle=False)
    model = _Tiny()
    bank_d, bank_r = MemoryBank(n, 4, seed=1), MemoryBank(n, 4, seed=2)
    old_d, old_r = bank_d.memory.clone(), bank_r.memory.clone()
    trainer = RadiomicsDeepTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=loader,
        network=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss_function=RadiomicsDeepNCELoss(),
        bank_deep=bank_d,
        bank_radiomics=bank_r,
        num_negatives=2048,  # more than N - 1 = 5: every other sample is a negative
    )
    trainer.run()
    d, r = model.seen["deep"], model.seen["radiomics"]
    rows = torch.tensor(batch_rows)
    # v_i <- normalise(0.5 v_i + 0.5 e_i), with the embeddings of this step
    torch.testing.assert_close(bank_d.memory[rows], F.normalize(0.5 * old_d[rows] + 0.5 * d, dim=1))
    torch.testing.assert_close(bank_r.memory[rows], F.normalize(0.5 * old_r[rows] + 0.5 * r, dim=1))
    others = torch.tensor([0, 2, 3])
    torch.testing.assert_close(bank_d.memory[others], old_d[others])  # rows not in the batch untouched
    torch.testing.assert_close(bank_r.memory[others], old_r[others])
    # the loss of the step: Eq. 1-2 against the banks *before* the update, all 5 other samples as negatives
    negatives = torch.tensor([[j for j in range(n) if j != i] for i in batch_rows])
    tau = 0.07

    def direction(anchor, bank):
        logits = torch.stack(
            [torch.cat([bank[i : i + 1], bank[negatives[b]]]) @ anchor[b] / tau for b, i in enumerate(batch_rows)]
        )
        return F.cross_entropy(logits, torch.zeros(3, dtype=torch.long))

    out = trainer.state.output
    torch.testing.assert_close(out["loss_deep_anchor"], direction(d, old_r))
    torch.testing.assert_close(out["loss_radiomics_anchor"], direction(r, old_d))
    torch.testing.assert_close(out["loss"], out["loss_deep_anchor"] + out["loss_radiomics_anchor"])
    assert out["loss"] > 2 * math.log(6) * 0.5  # near chance at the start


# ---------------------------------------------------------------------------------------------- evaluation parts


def test_grouped_folds_never_split_a_patient():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(40), rng.integers(1, 5, 40))  # 1-4 samples per patient
    labels = (patients % 3 == 0).astype(int)  # one class per patient
    splits = stratified_splits(labels, 5, (1.0, 0.5), seed=0, groups=patients)
    assert len(splits) == 10
    tested = []
    for s in splits:
        fit, val, test = (set(patients[p].tolist()) for p in (s.fit, s.val, s.test))
        assert not (fit & val) and not (fit & test) and not (val & test)
        assert set(np.unique(labels[s.fit])) == {0, 1} and set(np.unique(labels[s.val])) == {0, 1}
        if s.label_fraction == 1.0:
            tested.append(s.test)
            assert len(s.fit) + len(s.val) + len(s.test) == len(labels)
    assert sorted(np.concatenate(tested).tolist()) == list(range(len(labels)))  # test folds partition the data
    half = [s for s in splits if s.label_fraction == 0.5]
    full = [s for s in splits if s.label_fraction == 1.0]
    for h, f in zip(half, full):
        assert set(h.train.tolist()) <= set(f.train.tolist())  # nested subsets
    with pytest.raises(ValueError, match="one group per sample"):
        stratified_splits(labels, 5, groups=patients[:-1])


def test_feature_selection_keeps_the_informative_feature():
    rng = np.random.default_rng(0)
    y = np.array([0] * 40 + [1] * 40)
    x = rng.normal(size=(80, 30))
    x[:, 7] += 3.0 * y  # the one informative feature
    x[:, 3] = 1.0  # a constant feature
    svm = LinearSVMClassifier(select_k=1)
    assert svm._selector(x, y).tolist() == [7]
    assert 3 not in LinearSVMClassifier(select_k=29)._selector(x, y).tolist()
    split = stratified_splits(y, 5, (1.0,), seed=0)[0]
    result = svm.fit_predict(x, y, split)
    assert np.mean(result.y_pred == y[split.test]) > 0.8
    with pytest.raises(ValueError, match="select_k"):
        LinearSVMClassifier(select_k=0)


def test_weighted_f1_by_hand():
    record = {
        "metrics": {},
        "predictions": [
            {"y_true": [0, 0, 0, 1], "y_pred": [0, 0, 1, 1]},
            {"y_true": [0, 1], "y_pred": [0, 1]},
        ],
    }
    add_weighted_f1([record])
    # fold 0: F1(0) = 2*2/(2*2+0+1) = 0.8 (3 cases), F1(1) = 2*1/(2+1+0) = 2/3 (1 case) -> (3*0.8 + 2/3)/4
    f0 = (3 * 0.8 + 2 / 3) / 4
    entry = record["metrics"]["f1_weighted"]
    assert entry["folds"] == pytest.approx([f0, 1.0])
    # pooled: y_true 0,0,0,1,0,1 / y_pred 0,0,1,1,0,1: F1(0) = 6/7 (4 cases), F1(1) = 0.8 (2 cases)
    assert entry["pooled"] == pytest.approx((4 * 6 / 7 + 2 * 0.8) / 6)


def test_foreground_mask_and_radiomics_join(tmp_path):
    image = torch.zeros(1, 4, 4, 4)
    image[0, 1:3, 1:3, 2] = 255.0
    d = ForegroundMaskd()({"image": image, "id": "a"})
    assert d["mask"].sum() == 4 and d["mask"].shape == image.shape
    given = torch.ones_like(image)
    assert ForegroundMaskd()({"image": image, "mask": given})["mask"] is given
    with pytest.raises(ValueError, match="'b'"):
        ForegroundMaskd()({"image": torch.zeros(1, 4, 4, 4), "id": "b"})

    csv = write_feature_csv(tmp_path / "r.csv", ["x", "z", "y"], ["f1", "f2"], [[1, 2], [5, 6], [3, float("nan")]])
    items = attach_radiomics([{"id": "x", "image": 0}, {"id": "y", "image": 1}, {"id": "z", "image": 2}], csv)
    assert [(i["id"], i["index"]) for i in items] == [("x", 0), ("z", 1)]  # y: non-finite row, left out
    np.testing.assert_array_equal(items[1]["radiomics"], np.array([5.0, 6.0], dtype=np.float32))

    params = radiomics_params(CONFIGS / "radiomics.yaml", log_sigma=[1, 2, 3], setting={"binWidth": 0.05})
    assert params["imageType"]["LoG"]["sigma"] == [1.0, 2.0, 3.0] and params["setting"]["binWidth"] == 0.05
    assert radiomics_params(CONFIGS / "radiomics.yaml")["imageType"]["LoG"]["sigma"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert "LoG" not in radiomics_params(CONFIGS / "radiomics.yaml", log_sigma=[])["imageType"]


# ------------------------------------------------------------------------------------------------------ workflows

FAST = {
    "backbone": "resnet18",
    "spatial_size": [32, 32],
    "synthetic#n": 16,
    "synthetic#imbalance": 1.5,
    "synthetic#size": [24, 24, 24],
    "log_sigma": [1.0],
    "radiomics_workers": 0,
    "device": "cpu",
}


def _workflow(name: str, **override) -> ConfigWorkflow:
    return bundle_workflow(CONFIGS, name, **{**FAST, **override})


def test_metadata_has_mandatory_keys():
    meta = json.loads((CONFIGS / "metadata.json").read_text(encoding="utf-8"))
    for key in ("version", "monai_version", "pytorch_version", "numpy_version", "task", "description", "authors"):
        assert isinstance(meta[key], str) and meta[key], key
    assert meta["version"] in meta["changelog"]
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 10
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 128
    assert (BUNDLE / "LICENSE").is_file() and (CONFIGS / "logging.conf").is_file()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("rdc_train")
    wf = _workflow("train", output_dir=str(out), epochs=1, batch_size=8)
    assert not wf.check_properties()
    bank = wf.parser.get_parsed_content("bank_deep")
    before = bank.memory.clone()
    losses: list[float] = []
    wf.trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    wf.run()
    wf.finalize()
    return {"out": out, "wf": wf, "bank_before": before, "bank": bank, "losses": losses}


def test_train_workflow_one_epoch(trained):
    out, wf = trained["out"], trained["wf"]
    assert wf.bundle_root == str(BUNDLE.resolve())
    assert len(trained["losses"]) == 2  # 16 phantoms, batch 8, drop_last
    assert all(math.isfinite(v) and v > 0 for v in trained["losses"])
    metrics = wf.trainer.state.metrics
    assert {"train_loss_epoch", "loss_deep_anchor_epoch", "loss_radiomics_anchor_epoch"} <= set(metrics)
    changed = (trained["bank"].memory - trained["bank_before"]).abs().sum(1) > 0
    assert int(changed.sum()) == 16  # the 16 samples of the two batches were written to the bank
    model = torch.load(out / "models" / "model.pt", weights_only=True)
    network = wf.parser.get_parsed_content("network_def")
    assert set(model) == set(network.state_dict())
    assert model["radiomics_branch.standardize.mean"].shape[0] == 107 + 93 + 8 * 93  # Original + LoG x1 + wavelet
    ckpt = torch.load(out / "checkpoints" / "checkpoint_epoch=1.pt", weights_only=True)
    assert {"model", "optimizer", "bank_deep", "bank_radiomics", "trainer"} <= set(ckpt)
    assert (out / "radiomics.csv").is_file() and list((out / "radiomics_cache").iterdir())


def test_evaluate_workflow_with_ckpt(trained, tmp_path):
    wf = _workflow(
        "evaluate",
        output_dir=str(tmp_path),
        ckpt=str(trained["out"] / "models" / "model.pt"),
        radiomics_cache=str(trained["out"] / "radiomics_cache"),  # the train run's cache: nothing recomputed
        finetune_epochs=1,
        finetune_batch_size=8,
        label_fractions=[1.0, 0.5],
        select_k=10,
        finetune_class_weight="balanced",
    )
    wf.run()
    wf.finalize()
    assert not (tmp_path / "pretrain").exists()  # --ckpt given: no pre-training
    doc = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    rows = {(r["feature_set"], r["label_fraction"]) for r in doc["records"]}
    names = [
        "Ours, both views (linear)",
        "Ours, deep view (linear)",
        "Ours, radiomics view (linear)",
        "Radiomics method",
        "ResNet-18",
        "Hybrid network (scratch)",
        "Hybrid network (fine-tune)",
    ]
    assert rows == {(n, f) for n in names for f in (1.0, 0.5)}
    for r in doc["records"]:
        assert r["n_folds"] == 5 and len(r["metrics"]["f1_weighted"]["folds"]) == 5
        assert 0.0 <= r["metrics"]["accuracy"]["mean"] <= 1.0
    assert doc["header"]["n_samples"] == 16 and not doc["header"]["grouped"]
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "Table 1" in text and "Table 2" in text and "Hybrid network (fine-tune)" in text
    assert (tmp_path / "label_efficiency.png").stat().st_size > 1000
    history = json.loads((tmp_path / "analysis.json").read_text(encoding="utf-8"))["finetune_history"]
    frozen = {h["method"]: h["frozen_parameters"] for h in history}
    assert frozen["Hybrid network (fine-tune)"] > 0 and frozen["Hybrid network (scratch)"] == 0
    assert doc["header"]["finetune"]["class_weight"] == "balanced"


def test_finetune_rejects_an_unknown_class_weight():
    with pytest.raises(ValueError, match="class_weight"):
        FineTuneClassifier(torch.zeros(2, 1), torch.zeros(2, 1), np.array([0, 1]), lambda n: None, class_weight="x")


def test_inference_exports_deep_and_radiomics_embeddings(trained, tmp_path):
    wf = _workflow(
        "inference",
        output_dir=str(tmp_path),
        ckpt=str(trained["out"] / "models" / "model.pt"),
        radiomics_cache=str(trained["out"] / "radiomics_cache"),
    )
    wf.run()
    wf.finalize()
    lines = (tmp_path / "embeddings.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["id", "label", "deep_0"] and header[-1] == "radiomics_127" and len(header) == 2 + 256
    assert len(lines) - 1 == 16
    row = np.asarray([float(v) for v in lines[1].split(",")[2:]])
    assert np.linalg.norm(row[:128]) == pytest.approx(1.0, abs=1e-4)  # L2-normalised deep embedding


def test_the_synthetic_default_supports_every_label_fraction_of_fig2(tmp_path):
    """evaluate.json's synthetic default (160 phantoms, 3:1) must give 5-fold splits at 5 %, 20 %, 50 % and 100 %
    labels with both classes in every fit and val part (Fig. 2's fractions on a fresh machine)."""
    config = json.loads((CONFIGS / "evaluate.json").read_text(encoding="utf-8"))
    synthetic = {k: v for k, v in config["synthetic"].items() if k != "seed"}
    from medssl_monai.data import synthetic_datalist

    labels = np.asarray([item["label"] for item in synthetic_datalist(**synthetic, seed=0)])
    splits = stratified_splits(labels, config["n_splits"], config["label_fractions"], 0.2, 0)
    assert sorted({s.label_fraction for s in splits}) == [0.05, 0.2, 0.5, 1.0]
    for s in splits:
        assert set(labels[s.fit]) == set(labels[s.val]) == {0, 1}
