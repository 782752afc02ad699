"""Rubik's cube pretext task (Zhuang et al., MICCAI 2019): permutation set, cube transform, network, loss, bundle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import BUNDLE_3DSIAM
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from torch.nn import functional as F

from medssl_monai.losses import RubikCubeLoss
from medssl_monai.networks import RubikCubeNetwork, SiamEncoder3D
from medssl_monai.transforms import RubikCubed, hamming_permutations, rotate_cube


def test_hamming_permutations_are_distinct_permutations_far_apart_and_seeded():
    p = hamming_permutations(8, 100, seed=0)
    assert p.shape == (100, 8) and p.dtype == np.int64
    assert all(sorted(row) == list(range(8)) for row in p.tolist())
    assert len({tuple(r) for r in p.tolist()}) == 100
    distance = (p[:, None] != p[None]).sum(-1) + 99 * np.eye(100, dtype=int)
    assert distance.min() >= 5  # 100 random permutations of 8 have pairs at distance 2
    np.testing.assert_array_equal(p, hamming_permutations(8, 100, seed=0))
    assert not np.array_equal(p, hamming_permutations(8, 100, seed=1))
    with pytest.raises(ValueError, match="n_permutations"):
        hamming_permutations(3, 7)


def test_hamming_permutations_greedy_beats_random_selection():
    rng = np.random.default_rng(0)
    random = np.array([rng.permutation(6) for _ in range(30)])
    chosen = hamming_permutations(6, 30, seed=0)

    def min_distance(p):
        return ((p[:, None] != p[None]).sum(-1) + 99 * np.eye(len(p), dtype=int)).min()

    assert min_distance(chosen) > min_distance(random)


def test_rotate_cube_is_a_180_degree_turn():
    cube = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3, 3)
    assert torch.equal(rotate_cube(cube, 0), cube)
    for turn in (1, 2):
        turned = rotate_cube(cube, turn)
        assert not torch.equal(turned, cube) and torch.equal(rotate_cube(turned, turn), cube)
    # horizontal = rot90 twice in the (H, W) plane, vertical = twice in the (D, W) plane
    assert torch.equal(rotate_cube(cube, 1), torch.rot90(cube, 2, dims=(2, 3)))
    assert torch.equal(rotate_cube(cube, 2), torch.rot90(cube, 2, dims=(1, 3)))


def _undo(sample: dict, transform: RubikCubed, channels: int, octant: int) -> torch.Tensor:
    """Rebuild the image from the presented cubes and the targets (full-octant cubes, no resize)."""
    cubes = sample["cubes"].reshape(8, channels, octant, octant, octant)
    flags = sample["rotation"].reshape(8, 2)
    image = torch.zeros(channels, 2 * octant, 2 * octant, 2 * octant)
    corners = list(itertools.product((0, octant), repeat=3))
    for j, source in enumerate(transform.permutations[int(sample["permutation"])]):
        turn = 0 if flags[j].sum() == 0 else int(flags[j].argmax()) + 1
        d, h, w = corners[source]
        image[:, d : d + octant, h : h + octant, w : w + octant] = rotate_cube(cubes[j], turn)
    return image


def test_rubik_cubes_and_targets_reconstruct_the_image_exactly():
    image = torch.rand(2, 8, 8, 8)
    transform = RubikCubed("image", n_permutations=20)
    transform.set_random_state(3)
    seen_permutations, seen_turns = set(), set()
    for _ in range(12):
        sample = transform({"image": image})
        assert sample["cubes"].shape == (16, 4, 4, 4) and sample["rotation"].shape == (16,)
        assert sample["permutation"].dtype == torch.int64 and 0 <= int(sample["permutation"]) < 20
        assert (sample["rotation"].reshape(8, 2).sum(1) <= 1).all()  # at most one turn per cube
        torch.testing.assert_close(_undo(sample, transform, 2, 4), image, rtol=0, atol=0)
        seen_permutations.add(int(sample["permutation"]))
        seen_turns.update(
            sample["rotation"].reshape(8, 2).argmax(1)[sample["rotation"].reshape(8, 2).sum(1) > 0].tolist()
        )
    assert len(seen_permutations) > 5 and seen_turns == {0, 1}


def test_rubik_random_gap_crops_inside_each_octant_and_resizes():
    image = torch.zeros(1, 28, 28, 28)
    image[:, :14, :14, :14] = 1.0  # octant 0 is ones, every other octant zeros
    transform = RubikCubed("image", cube_size=12, resize_to=27)
    transform.set_random_state(0)
    sample = transform({"image": image})
    cubes = sample["cubes"]
    assert cubes.shape == (8, 27, 27, 27)
    source = transform.permutations[int(sample["permutation"])]
    for j in range(8):
        expected = 1.0 if source[j] == 0 else 0.0
        torch.testing.assert_close(cubes[j], torch.full_like(cubes[j], expected))
    offsets = [tuple(transform._offsets[j]) for j in range(8)]
    assert all(0 <= o <= 2 for row in offsets for o in row) and len(set(offsets)) > 1


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [((1, 28, 28, 20), {}, "cubic"), ((28, 28, 28), {}, "cubic"), ((1, 28, 28, 28), {"cube_size": 15}, "cube_size")],
)
def test_rubik_rejects_bad_input_with_a_clear_error(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RubikCubed("image", **kwargs)({"image": torch.zeros(shape)})


def test_rubik_network_shares_one_encoder_across_cubes():
    torch.manual_seed(0)
    net = RubikCubeNetwork(SiamEncoder3D(), n_permutations=10, hidden_features=32).eval()
    x = torch.rand(3, 8, 27, 27, 27)
    out = net(x)
    assert out["embedding"].shape == (3, 256)
    assert out["permutation_logits"].shape == (3, 10) and out["rotation_logits"].shape == (3, 16)
    with torch.no_grad():
        single = net.backbone(x[:, 5:6])
        shuffled = net(x[:, torch.randperm(8)])
    # the embedding is the mean of the cube features (order-free); the heads see the order
    torch.testing.assert_close(shuffled["embedding"], out["embedding"], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(shuffled["permutation_logits"], out["permutation_logits"])
    features = torch.stack([net.backbone(x[:, j : j + 1]) for j in range(8)], 1)
    torch.testing.assert_close(features[:, 5], single)
    torch.testing.assert_close(out["embedding"], features.mean(1), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="expects"):
        net(torch.rand(2, 4, 27, 27, 27))


def test_rubik_loss_is_cross_entropy_plus_multilabel_bce():
    torch.manual_seed(0)
    logits_p, logits_r = torch.randn(4, 10, requires_grad=True), torch.randn(4, 16, requires_grad=True)
    perm, rot = torch.tensor([0, 3, 9, 3]), (torch.rand(4, 16) > 0.7).float()
    loss = RubikCubeLoss()(logits_p, logits_r, permutation=perm, rotation=rot)
    manual_ce = -torch.log_softmax(logits_p, 1)[torch.arange(4), perm].mean()
    s = torch.sigmoid(logits_r)
    manual_bce = -(rot * torch.log(s) + (1 - rot) * torch.log(1 - s)).mean()
    torch.testing.assert_close(loss, manual_ce + manual_bce)
    weighted = RubikCubeLoss(permutation_weight=2.0, rotation_weight=0.5)(logits_p, logits_r, perm, rot)
    torch.testing.assert_close(weighted, 2.0 * manual_ce + 0.5 * manual_bce)
    uniform = RubikCubeLoss()(logits_p, logits_r, perm, rot, weight=torch.full((4,), 3.0))
    torch.testing.assert_close(uniform, loss)
    one_hot = RubikCubeLoss()(logits_p, logits_r, perm, rot, weight=torch.tensor([0.0, 1.0, 0.0, 0.0]))
    alone = F.cross_entropy(logits_p[1:2], perm[1:2]) + F.binary_cross_entropy_with_logits(logits_r[1:2], rot[1:2])
    torch.testing.assert_close(one_hot, alone)
    loss.backward()
    assert logits_p.grad.abs().sum() > 0 and logits_r.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="expected"):
        RubikCubeLoss()(logits_p, logits_r, perm[:3], rot)
    with pytest.raises(ValueError, match="non-negative"):
        RubikCubeLoss(permutation_weight=0.0, rotation_weight=0.0)


def test_rubik_bundle_config_trains_the_3dsiam_encoder(tmp_path):
    """train.json + rubik.json: the pretext targets reach the loss, and the saved model is the plain encoder."""
    configs = BUNDLE_3DSIAM / "configs"
    wf = ConfigWorkflow(
        config_file=[str(configs / "train.json"), str(configs / "rubik.json")],
        workflow_type="train",
        logging_file=False,
        output_dir=str(tmp_path),
        epochs=1,
        batch_size=2,
        num_workers=0,
        roi_size=[28, 28, 28],
        n_permutations=10,
        health_n=8,
        precise_bn_batches=2,
        **{"synthetic#n": 8, "synthetic#size": [32, 32, 32]},
    )
    wf.initialize()
    losses: list[float] = []
    wf.trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    wf.run()
    wf.finalize()
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert 0.5 * (np.log(10) + np.log(2)) < losses[0] < 2 * (np.log(10) + np.log(2))  # chance level at start
    saved = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    SiamEncoder3D().load_state_dict(saved)  # the encoder alone, as inference.json loads it
