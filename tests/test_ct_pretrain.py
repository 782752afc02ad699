"""Paper 3's pre-training half: SwAV (Sinkhorn codes, swapped prediction, prototypes, queue), MoCo v2 (InfoNCE
against a queue, momentum encoder), SparK (sparse masked encoder, masked-patch loss), LARS / LAMB, the manifest ->
pretrain -> inference -> finetune path through the bundle, and the fine-tuning protocol's pieces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import REPO, bundle_workflow
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from torch.nn import functional as F

from medssl_monai.apps.ct_slice_reduction import build_pretraining, linear_cka, organ_patch_task, stage_features
from medssl_monai.data import load_manifest_slices, write_synthetic_ct_folder
from medssl_monai.engines import LAMB, LARS
from medssl_monai.losses import MaskedReconstructionLoss, MoCoLoss, SwAVLoss, patchify, sinkhorn_knopp
from medssl_monai.networks import (
    FeatureQueue,
    MoCoNetwork,
    SparKNetwork,
    SwAVPrototypes,
    random_visible_mask,
    resnet_backbone,
)
from medssl_monai.reduction.run import reduce_dataset

CONFIGS = REPO / "bundles" / "ct_slice_reduction" / "configs"


def _pretrain(**override) -> ConfigWorkflow:
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "pretrain.json"), workflow_type="train", logging_file=False, **override
    )
    wf.initialize()
    return wf


# -- SwAV ------------------------------------------------------------------------------------------------------------
def _sinkhorn_reference(scores: np.ndarray, eps: float, iters: int) -> np.ndarray:
    """Caron et al.'s Alg. 1 written out with explicit loops."""
    q = np.exp(scores / eps).T  # K x B
    q = q / q.sum()
    k, b = q.shape
    for _ in range(iters):
        for r in range(k):
            q[r] = q[r] / q[r].sum() / k
        for c in range(b):
            q[:, c] = q[:, c] / q[:, c].sum() / b
    return (q * b).T


def test_sinkhorn_matches_the_written_out_algorithm_and_equipartitions():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(6, 4, generator=g) * 2 - 1
    codes = sinkhorn_knopp(scores, epsilon=0.5, iterations=3)
    np.testing.assert_allclose(codes.numpy(), _sinkhorn_reference(scores.double().numpy(), 0.5, 3), rtol=1e-5)
    np.testing.assert_allclose(codes.sum(1).numpy(), np.ones(6), rtol=1e-5)  # each sample's assignment sums to 1
    many = sinkhorn_knopp(scores, epsilon=0.5, iterations=200)
    np.testing.assert_allclose(many.sum(0).numpy(), np.full(4, 6 / 4), rtol=1e-4)  # prototypes used equally
    # epsilon = 0.05 on cosines does not overflow (max subtracted)
    assert torch.isfinite(sinkhorn_knopp(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) * 1.0, 0.05, 3)).all()


def test_swav_loss_is_the_swapped_cross_entropy_and_codes_get_no_gradient():
    g = torch.Generator().manual_seed(1)
    s = [F.normalize(torch.randn(5, 3, generator=g), dim=1).requires_grad_() for _ in range(3)]
    loss_fn = SwAVLoss(temperature=0.1, epsilon=0.05, sinkhorn_iterations=3, num_assign_crops=2)
    loss = loss_fn(*s)
    q = [sinkhorn_knopp(x.detach(), 0.05, 3) for x in s[:2]]
    logp = [F.log_softmax(x / 0.1, dim=1) for x in s]
    expected = (
        0.5
        * (
            (-(q[0] * logp[1]).sum(1) - (q[0] * logp[2]).sum(1)) / 2
            + (-(q[1] * logp[0]).sum(1) - (q[1] * logp[2]).sum(1)) / 2
        ).mean()
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # crop 3 is only predicted, never a target: its gradient is exactly that of the cross-entropy (codes constant)
    p3 = torch.softmax(s[2].detach() / 0.1, 1)
    analytic = ((p3 - q[0]) + (p3 - q[1])) / 0.1 / 2 / 2 / 5
    torch.testing.assert_close(s[2].grad, analytic)


def test_swav_queue_joins_the_sinkhorn_input_and_only_batch_rows_are_targets():
    g = torch.Generator().manual_seed(2)
    s = [torch.randn(4, 6, generator=g) for _ in range(2)]
    queue = torch.randn(2, 10, 6, generator=g)
    codes = SwAVLoss().codes(s, queue)
    torch.testing.assert_close(codes[0], sinkhorn_knopp(torch.cat([queue[0], s[0]]), 0.05, 3)[-4:])
    assert not torch.allclose(codes[0], sinkhorn_knopp(s[0], 0.05, 3))


def test_swav_prototypes_frozen_get_no_gradient_and_normalise():
    protos = SwAVPrototypes(8, 5)
    z = F.normalize(torch.randn(3, 8), dim=1).requires_grad_()
    protos.frozen = True
    protos(z).sum().backward()
    assert protos.weight.grad is None
    protos.frozen = False
    protos(z).sum().backward()
    assert protos.weight.grad is not None
    protos.normalize_()
    torch.testing.assert_close(protos.weight.norm(dim=1), torch.ones(5))


# -- MoCo ------------------------------------------------------------------------------------------------------------
def test_moco_loss_by_hand_and_gradient_only_to_queries():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    k = torch.tensor([[1.0, 1.0], [0.0, 1.0]], requires_grad=True)
    queue = torch.tensor([[1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])
    loss = MoCoLoss(temperature=0.5)(q, k, queue=queue)
    s = 1 / math.sqrt(2)
    l0 = -math.log(math.exp(s / 0.5) / (math.exp(s / 0.5) + math.exp(1 / 0.5) + math.exp(0) + math.exp(-1 / 0.5)))
    l1 = -math.log(math.exp(1 / 0.5) / (math.exp(1 / 0.5) + math.exp(0) + math.exp(-1 / 0.5) + math.exp(0)))
    assert float(loss.detach()) == pytest.approx((l0 + l1) / 2, rel=1e-6)
    loss.backward()
    assert q.grad is not None and k.grad is None
    with pytest.raises(ValueError, match="queue"):
        MoCoLoss()(q, k)


def test_feature_queue_wraps_and_is_saved_in_the_state_dict():
    queue = FeatureQueue(length=5, dim=2)
    assert not queue.full and queue.entries().shape == (1, 0, 2)
    queue.push(torch.arange(6.0).reshape(3, 2))
    queue.push(torch.arange(6.0, 12.0).reshape(3, 2))
    assert queue.full and int(queue.ptr) == 1
    assert queue.queue[0, 0].tolist() == [10.0, 11.0]  # the 6th entry overwrote the oldest
    restored = FeatureQueue(length=5, dim=2)
    restored.load_state_dict(queue.state_dict())
    torch.testing.assert_close(restored.queue, queue.queue)
    assert int(restored.count) == 5


def test_moco_momentum_update_and_keys_carry_no_gradient():
    net = MoCoNetwork(resnet_backbone("resnet18", 2, 1), 512, queue_length=8, momentum=0.9)
    with torch.no_grad():
        for p in net.online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in net.momentum_encoder.parameters()]
    net.momentum_update()
    for b, q, k in zip(before, net.online.parameters(), net.momentum_encoder.parameters()):
        torch.testing.assert_close(k, 0.9 * b + 0.1 * q)
    keys = net.keys(torch.randn(2, 1, 32, 32))
    assert not keys.requires_grad
    torch.testing.assert_close(keys.norm(dim=1), torch.ones(2))


# -- SparK -----------------------------------------------------------------------------------------------------------
def test_patchify_and_masked_loss_ignore_visible_patches():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(x, 2)
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]  # top-right patch, row-major
    loss_fn = MaskedReconstructionLoss(patch_size=2, normalize_target=True)
    visible = torch.tensor([[[[True, False], [True, True]]]])
    target = patches[0, 1]
    normed = (target - target.mean()) / (target.var() + 1e-6).sqrt()
    rec = torch.zeros(1, 1, 4, 4)
    assert float(loss_fn(rec, x, visible)) == pytest.approx(float(normed.pow(2).mean()), rel=1e-6)
    rec2 = rec.clone()
    rec2[..., :2, :2] = 100.0  # a visible patch: not part of the loss
    assert float(loss_fn(rec2, x, visible)) == pytest.approx(float(loss_fn(rec, x, visible)))


def test_spark_encoder_never_sees_masked_pixels_and_loads_into_a_plain_resnet():
    torch.manual_seed(0)
    net = SparKNetwork(resnet_backbone("resnet18", 2, 1), in_channels=1, mask_ratio=0.5).eval()
    x = torch.randn(2, 1, 64, 64)
    visible = torch.tensor([[[[True, False], [False, True]]], [[[False, True], [True, False]]]])
    y = x.clone()
    for b in range(2):  # change only the masked patches
        for i in range(2):
            for j in range(2):
                if not visible[b, 0, i, j]:
                    y[b, :, 32 * i : 32 * (i + 1), 32 * j : 32 * (j + 1)] = torch.randn(1, 32, 32) * 10
    with torch.no_grad():
        a, b = net(x, visible), net(y, visible)
    torch.testing.assert_close(a["embedding"], b["embedding"])  # submanifold-sparse: masked pixels never leak
    torch.testing.assert_close(a["reconstruction"], b["reconstruction"])
    assert a["reconstruction"].shape == x.shape
    plain = resnet_backbone("resnet18", 2, 1)
    plain.load_state_dict(net.backbone.state_dict())
    mask = random_visible_mask(3, (3, 3), 0.6, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 1, 3, 3) and mask.reshape(3, -1).sum(1).tolist() == [4, 4, 4]


# -- optimisers ------------------------------------------------------------------------------------------------------
def test_lars_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    w.grad = torch.tensor([0.6, 0.8])
    LARS([w], lr=0.5, momentum=0.0, weight_decay=0.1, trust_coefficient=0.01).step()
    ratio = 0.01 * 5.0 / (1.0 + 0.1 * 5.0 + 1e-8)
    expected = torch.tensor([3.0, 4.0]) - 0.5 * ratio * (torch.tensor([0.6, 0.8]) + 0.1 * torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(w.detach(), expected)


def test_lamb_first_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    w.grad = torch.tensor([1.0, -2.0])
    LAMB([w], lr=0.1, betas=(0.9, 0.99), eps=0.0, weight_decay=0.0).step()
    r = torch.tensor([1.0, -1.0])  # first step: m_hat / sqrt(v_hat) = sign(g)
    expected = torch.tensor([3.0, 4.0]) - 0.1 * (5.0 / math.sqrt(2)) * r
    torch.testing.assert_close(w.detach(), expected)


# -- data, protocol and bundle ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reduction(tmp_path_factory):
    root = tmp_path_factory.mktemp("ct")
    data = write_synthetic_ct_folder(root / "data", n=2, size=[64, 64], distinct=8, repeat=4, seed=0)
    reduce_dataset(data, root / "reduction", method="hash", max_workers=0, progress=False)
    return root / "reduction"


def test_manifest_slices_are_the_kept_ones(reduction, tmp_path):
    rows = [line.split(",") for line in (reduction / "manifest.csv").read_text().splitlines()[1:]]
    kept = sum(int(r[-1]) for r in rows)
    items = load_manifest_slices(reduction, image_size=32)
    assert len(items) == kept < len(rows)
    assert items[0]["image"].shape == (1, 32, 32) and 0.0 <= items[0]["image"].min() <= items[0]["image"].max() <= 1
    assert len(load_manifest_slices(reduction, image_size=32, kept_only=False)) == len(rows)
    with pytest.raises(FileNotFoundError, match="run reduce.json first"):
        load_manifest_slices(tmp_path / "nowhere")


@pytest.mark.parametrize("method", ["swav", "moco", "spark"])
def test_each_method_trains_through_the_bundle_and_resumes(method, reduction, tmp_path):
    out = tmp_path / method
    common = {"reduction_dir": str(reduction), "method": method, "backbone": "resnet18", "image_size": 64,
              "batch_size": 4, "epochs": 2, "output_dir": str(out), "moco_queue_length": 16,
              "freeze_prototypes_iterations": 1, "lr": 0.01}  # fmt: skip
    wf = _pretrain(**common)
    losses: list[float] = []
    wf.trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    wf.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())  # killed after epoch 1
    wf.run()
    wf.finalize()
    assert losses and all(math.isfinite(v) for v in losses)
    wf = _pretrain(**common)
    epochs: list[int] = []
    wf.trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
    wf.run()
    wf.finalize()
    assert epochs == [2]
    if method == "moco":  # the queue came back from the checkpoint: two epochs of keys were pushed
        pushed = 2 * len(losses) * 4
        assert int(wf.parser.get_parsed_content("ssl_network_def").queue.ptr) == pushed % 16
    state = torch.load(out / "models" / "model.pt", weights_only=True)
    resnet_backbone("resnet18", 2, 1).load_state_dict(state)


def test_inference_and_finetune_configs_run_on_the_pretrained_encoder(reduction, tmp_path):
    out = tmp_path / "swav"
    wf = _pretrain(reduction_dir=str(reduction), image_size=64, batch_size=4, epochs=1,
                         output_dir=str(out), backbone="resnet18")  # fmt: skip
    wf.run()
    wf.finalize()
    ckpt = str(out / "models" / "model.pt")
    wf = bundle_workflow(
        CONFIGS, "inference", ckpt=ckpt, reduction_dir=str(reduction), output_dir=str(tmp_path / "inf")
    )
    wf.run()
    wf.finalize()
    lines = (tmp_path / "inf" / "embeddings.csv").read_text().splitlines()
    assert len(lines) - 1 == len(load_manifest_slices(reduction, image_size=8, kept_only=False))
    assert len(lines[1].split(",")) == 1 + 512
    wf = bundle_workflow(CONFIGS, "finetune", pretrained=ckpt, output_dir=str(tmp_path / "ft"), linear_epochs=1,
                         full_epochs=1, n_folds=2, synthetic={"n": 40, "size": 32, "n_classes": 2}, image_size=32)  # fmt: skip
    wf.run()
    wf.finalize()
    result = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert result["samples"] == 40 and {"auc", "accuracy", "f1", "linear_auc"} <= set(result["summary"])
    lo, hi = result["runs"][0]["auc_ci"]
    assert lo <= result["runs"][0]["auc"] <= hi


def test_organ_patches_and_cka():
    image = np.zeros((40, 40, 3), np.float32)
    labels = np.zeros((40, 40, 3), np.int64)
    labels[5:15, 5:15, :] = 1
    labels[20:30, 22:36, 1] = 2
    image[labels == 2] = 100.0
    images, targets, slices = organ_patch_task(image, labels, [1, 2], size=16, min_pixels=30)
    assert images.shape == (4, 1, 16, 16) and targets.tolist() == [0, 0, 1, 0] and slices.tolist() == [0, 1, 1, 2]
    a = torch.randn(50, 6, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    assert linear_cka(a, 3.0 * a @ rotation) == pytest.approx(1.0)
    assert linear_cka(a, torch.randn(50, 6, dtype=torch.float64)) < 0.5
    feats = stage_features(resnet_backbone("resnet18", 2, 1), torch.randn(3, 1, 32, 32))
    assert [v.shape[1] for v in feats.values()] == [64, 64, 128, 256, 512]


def test_build_pretraining_refuses_unknown_methods():
    with pytest.raises(ValueError, match="unknown pre-training method"):
        build_pretraining("byol", resnet_backbone("resnet18", 2, 1), 512)


def test_info_nce_with_shared_negatives_equals_the_per_anchor_form():
    from medssl_monai.losses import info_nce

    g = torch.Generator().manual_seed(5)
    a, p, queue = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g), torch.randn(9, 6, generator=g)
    shared = info_nce(a, p, queue, 0.2, reduction="none")
    torch.testing.assert_close(shared, info_nce(a, p, queue.expand(4, -1, -1), 0.2, reduction="none"))
