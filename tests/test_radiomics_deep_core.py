"""Core pieces of the radiomics-deep contrast method (Zhao & Yang, MICCAI 2021): memory bank, two-way InfoNCE,
2.5D tumour slices, lesion-box crop and resize."""

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medssl_monai.losses import RadiomicsDeepNCELoss, info_nce
from medssl_monai.networks import MemoryBank
from medssl_monai.transforms import (
    LesionBoxResized,
    Slices25Dd,
    average_lesion_size,
    lesion_bounding_box,
    select_tumour_slices,
    slices_25d,
)

# ----------------------------------------------------------------------------------------------------- memory bank


def test_bank_starts_with_unit_vectors_under_the_seed():
    bank = MemoryBank(50, 16, seed=3)
    torch.testing.assert_close(bank.memory.norm(dim=1), torch.ones(50))
    torch.testing.assert_close(bank.memory, MemoryBank(50, 16, seed=3).memory)
    assert not torch.allclose(bank.memory, MemoryBank(50, 16, seed=4).memory)
    assert not bank.memory.requires_grad and list(bank.parameters()) == []


def test_momentum_update_by_hand():
    bank = MemoryBank(3, 2)  # m = 0.5, the paper's momentum
    bank.memory.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
    bank.update(torch.tensor([0]), torch.tensor([[0.0, 1.0]]))
    # 0.5 (1, 0) + 0.5 (0, 1) = (0.5, 0.5) -> (1/sqrt2, 1/sqrt2); rows 1 and 2 untouched
    expected = torch.tensor([[math.sqrt(0.5), math.sqrt(0.5)], [0.0, 1.0], [0.6, 0.8]])
    torch.testing.assert_close(bank.memory, expected)

    bank = MemoryBank(2, 2, momentum=0.75)
    bank.memory.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    bank.update(torch.tensor([1]), torch.tensor([[1.0, 0.0]]))
    # 0.75 (0, 1) + 0.25 (1, 0) = (0.25, 0.75) -> / sqrt(0.625)
    torch.testing.assert_close(bank.memory[1], torch.tensor([0.25, 0.75]) / math.sqrt(0.625))


def test_update_renormalises_and_detaches():
    bank = MemoryBank(10, 8, seed=1)
    emb = torch.randn(4, 8, requires_grad=True) * 5.0
    bank.update(torch.tensor([2, 5, 7, 9]), emb)
    torch.testing.assert_close(bank.memory.norm(dim=1), torch.ones(10))
    assert not bank.memory.requires_grad
    same = MemoryBank(1, 3)
    same.update(torch.tensor([0]), same.memory.clone())  # v with e = v stays v
    torch.testing.assert_close(same.memory, MemoryBank(1, 3).memory)


def test_repeated_index_uses_the_mean_embedding():
    bank = MemoryBank(2, 2)
    bank.memory.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    bank.update(torch.tensor([0, 0]), torch.tensor([[0.0, 1.0], [0.0, 3.0]]))
    # mean e = (0, 2); 0.5 (1, 0) + 0.5 (0, 2) = (0.5, 1) -> / sqrt(1.25)
    torch.testing.assert_close(bank.memory[0], torch.tensor([0.5, 1.0]) / math.sqrt(1.25))


def test_update_and_index_checks():
    bank = MemoryBank(4, 3)
    with pytest.raises(ValueError, match="indices"):
        bank.update(torch.tensor([4]), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="embeddings"):
        bank.update(torch.tensor([0, 1]), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="momentum"):
        MemoryBank(4, 3, momentum=1.0)
    torch.testing.assert_close(bank(torch.tensor([[1, 2]])), bank.memory[[1, 2]][None])


def test_negatives_never_include_the_positive():
    bank = MemoryBank(30, 4)
    indices = torch.arange(30)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        neg = bank.sample_negatives(indices, num_negatives=7, generator=gen)
        assert neg.shape == (30, 7) and neg.dtype == torch.long
        assert not (neg == indices[:, None]).any()
        assert int(neg.min()) >= 0 and int(neg.max()) < 30
        assert all(len(set(row.tolist())) == 7 for row in neg)  # without replacement


def test_negatives_cover_every_other_sample():
    bank = MemoryBank(6, 2)
    gen = torch.Generator().manual_seed(1)
    neg = bank.sample_negatives(torch.full((400,), 2), num_negatives=2, generator=gen)
    assert set(neg.flatten().tolist()) == {0, 1, 3, 4, 5}


def test_all_other_samples_when_bank_is_small():
    bank = MemoryBank(5, 2)
    neg = bank.sample_negatives(torch.tensor([0, 3, 4]), num_negatives=2048)
    assert neg.tolist() == [[1, 2, 3, 4], [0, 1, 2, 4], [0, 1, 2, 3]]
    exact = bank.sample_negatives(torch.tensor([2]), num_negatives=4)  # K = N - 1: still exactly the others
    assert exact.tolist() == [[0, 1, 3, 4]]
    with pytest.raises(ValueError, match="no negatives"):
        MemoryBank(1, 2).sample_negatives(torch.tensor([0]))


def test_negatives_deterministic_under_a_seed():
    bank = MemoryBank(100, 2)
    idx = torch.tensor([0, 50, 99])
    a = bank.sample_negatives(idx, 10, torch.Generator().manual_seed(7))
    b = bank.sample_negatives(idx, 10, torch.Generator().manual_seed(7))
    c = bank.sample_negatives(idx, 10, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_state_dict_round_trip():
    bank = MemoryBank(8, 4, seed=0)
    bank.update(torch.tensor([1, 6]), torch.randn(2, 4))
    state = bank.state_dict()
    assert list(state) == ["memory"]
    other = MemoryBank(8, 4, seed=123)
    other.load_state_dict(state)
    torch.testing.assert_close(other.memory, bank.memory)


# ------------------------------------------------------------------------------------------------------------ loss

BANK_RAD = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
BANK_DEEP = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0]])


def test_info_nce_hand_value():
    anchor, positive = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    negatives = torch.tensor([[[0.0, 1.0]]])
    # -log(e^1 / (e^1 + e^0)) = log(1 + e^-1)
    assert float(info_nce(anchor, positive, negatives, temperature=1.0)) == pytest.approx(math.log(1 + math.exp(-1)))
    # tau = 0.07 (default): a negative at cosine 0.93 is one logit below the positive -> log(1 + e^-1) again
    close = torch.tensor([[[0.93, math.sqrt(1 - 0.93**2)]]])
    assert float(info_nce(anchor, positive, close)) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-5)


def test_loss_hand_computed_both_directions():
    loss = RadiomicsDeepNCELoss(temperature=0.5)
    z_deep = torch.tensor([[2.0, 0.0]])  # normalised inside: (1, 0)
    z_rad = torch.tensor([[0.6, 0.8]])
    idx, neg = torch.tensor([0]), torch.tensor([[1, 2]])
    # deep anchor (1, 0) vs radiomics bank: positive r0 = (1, 0) -> 1; negatives r1 -> 0, r2 -> -1
    d_r = math.log(1 + math.exp(-1 / 0.5) + math.exp(-2 / 0.5))
    # radiomics anchor (0.6, 0.8) vs deep bank: positive d0 = (0, 1) -> 0.8; negatives d1 -> 0.6, d2 -> -0.8
    r_d = math.log(1 + math.exp(-0.2 / 0.5) + math.exp(-1.6 / 0.5))
    first, second = loss.directions(z_deep, z_rad, BANK_DEEP, BANK_RAD, idx, neg)
    assert float(first) == pytest.approx(d_r, rel=1e-6)
    assert float(second) == pytest.approx(r_d, rel=1e-6)
    assert float(loss(z_deep, z_rad, BANK_DEEP, BANK_RAD, idx, neg)) == pytest.approx(d_r + r_d, rel=1e-6)  # Eq. 2


def test_loss_batch_mean_per_direction():
    loss = RadiomicsDeepNCELoss(temperature=1.0)
    z_deep = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_rad = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    idx, neg = torch.tensor([0, 1]), torch.tensor([[2], [0]])
    # L^{d,r}: row 0: (1,0).r0=1 vs .r2=-1 ; row 1: (0,1).r1=1 vs .r0=0
    d_r = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)))
    # L^{r,d}: row 0: (0,1).d0=1 vs .d2=-1 ; row 1: (1,0).d1=1 vs .d0=0
    r_d = 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)))
    assert float(loss(z_deep, z_rad, BANK_DEEP, BANK_RAD, idx, neg)) == pytest.approx(d_r + r_d, rel=1e-6)


def test_positive_among_negatives_is_rejected():
    loss = RadiomicsDeepNCELoss()
    with pytest.raises(ValueError, match="own negative"):
        loss(torch.randn(2, 2), torch.randn(2, 2), BANK_DEEP, BANK_RAD, torch.tensor([0, 1]), torch.tensor([[2], [1]]))


def test_gradient_reaches_anchors_not_banks():
    bank_deep = BANK_DEEP.clone().requires_grad_(True)
    bank_rad = BANK_RAD.clone().requires_grad_(True)
    z_deep = torch.randn(2, 2, requires_grad=True)
    z_rad = torch.randn(2, 2, requires_grad=True)
    RadiomicsDeepNCELoss()(
        z_deep, z_rad, bank_deep, bank_rad, torch.tensor([0, 2]), torch.tensor([[1], [0]])
    ).backward()
    assert z_deep.grad is not None and z_deep.grad.abs().sum() > 0
    assert z_rad.grad is not None and z_rad.grad.abs().sum() > 0
    assert bank_deep.grad is None and bank_rad.grad is None


def test_one_training_step_with_memory_banks():
    torch.manual_seed(0)
    n, dim = 12, 8
    deep_net, rad_net = torch.nn.Linear(5, dim), torch.nn.Linear(7, dim)
    bank_deep, bank_rad = MemoryBank(n, dim, seed=0), MemoryBank(n, dim, seed=1)
    before = bank_rad.memory.clone()
    idx = torch.tensor([3, 7, 11])
    z_deep = torch.nn.functional.normalize(deep_net(torch.randn(3, 5)), dim=1)
    z_rad = torch.nn.functional.normalize(rad_net(torch.randn(3, 7)), dim=1)
    neg = bank_rad.sample_negatives(idx, 2048, torch.Generator().manual_seed(0))
    assert neg.shape == (3, n - 1)
    loss = RadiomicsDeepNCELoss()(z_deep, z_rad, bank_deep.memory, bank_rad.memory, idx, neg)
    loss.backward()
    assert torch.isfinite(loss) and deep_net.weight.grad is not None and rad_net.weight.grad is not None
    bank_deep.update(idx, z_deep)
    bank_rad.update(idx, z_rad)
    changed = (bank_rad.memory != before).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [3, 7, 11]


# ------------------------------------------------------------------------------------------------------ 2.5D input


def _volume(first: int, last: int, depth: int = 30, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Image whose slice z is the constant z (1e4 outside the tumour box); tumour box rows 4..9, cols 5..8."""
    image = np.full((size, size, depth), 1e4, dtype=np.float32)
    mask = np.zeros((size, size, depth), dtype=np.uint8)
    image[4:10, 5:9, :] = np.arange(depth, dtype=np.float32)
    mask[4:10, 5:9, first : last + 1] = 1
    return image, mask


def test_three_slice_tumour_repeats_from_the_middle_outward():
    _, mask = _volume(4, 6)
    assert select_tumour_slices(mask) == [4, 4, 4, 5, 5, 5, 5, 6, 6, 6]
    _, mask = _volume(10, 13)
    assert select_tumour_slices(mask) == [10, 10, 11, 11, 11, 12, 12, 12, 13, 13]
    _, mask = _volume(8, 8)
    assert select_tumour_slices(mask) == [8] * 10


def test_repetition_pattern_in_the_stack():
    image, mask = _volume(4, 6)
    stack = slices_25d(image, mask)
    assert stack.shape == (10, 64, 64) and stack.dtype == torch.float32
    # slices 4, 5, 6 min-max scaled over the stack (the 1e4 outside the box is cropped away): 0, 0.5, 1
    expected = torch.tensor([0.0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1])[:, None, None].expand(10, 64, 64)
    torch.testing.assert_close(stack, expected)


def test_twenty_slice_tumour():
    _, mask = _volume(5, 24)
    assert select_tumour_slices(mask, spread="central") == list(range(10, 20))
    # uniform (paper): positions floor(j * 19 / 9 + 0.5) = 0 2 4 6 8 11 13 15 17 19, offset by the first slice 5
    assert select_tumour_slices(mask) == [5, 7, 9, 11, 13, 16, 18, 20, 22, 24]
    _, mask = _volume(0, 9)
    assert select_tumour_slices(mask) == list(range(10)) == select_tumour_slices(mask, spread="central")


def test_slice_axis_and_range():
    image, mask = _volume(3, 20)
    stack = slices_25d(image, mask, spatial_size=(32, 24), intensity_range=(0.0, 40.0))
    assert stack.shape == (10, 32, 24)
    assert float(stack.min()) >= 0.0 and float(stack.max()) <= 1.0
    torch.testing.assert_close(stack[:, 0, 0], torch.tensor(select_tumour_slices(mask), dtype=torch.float32) / 40.0)
    moved = slices_25d(np.moveaxis(image, 2, 0), np.moveaxis(mask, 2, 0), axis=0)
    torch.testing.assert_close(moved, slices_25d(image, mask))


def test_empty_mask_and_nan_name_the_case():
    image, mask = _volume(4, 6)
    with pytest.raises(ValueError, match="empty.*case 'kits_007'"):
        slices_25d(image, np.zeros_like(mask), case="kits_007")
    image[6, 6, 5] = np.nan
    with pytest.raises(ValueError, match="NaN.*case 'kits_008'"):
        Slices25Dd()({"image": image, "mask": mask, "id": "kits_008"})


def test_dict_transform_channel_first():
    image, mask = _volume(2, 4)
    out = Slices25Dd()({"image": MetaTensor(image[None]), "mask": torch.as_tensor(mask[None]), "id": "c1"})
    assert out["image"].shape == (10, 64, 64) and out["mask"].shape == (10, 64, 64)
    assert set(out["mask"].unique().tolist()) == {1.0}  # the box is all tumour in this phantom
    assert float(out["image"].min()) == 0.0 and float(out["image"].max()) == 1.0
    assert out["id"] == "c1"


# ---------------------------------------------------------------------------------------------- 2D lesion box view


def test_lesion_box_resized_crops_resizes_and_scales():
    image = torch.full((1, 20, 30), 1e4)
    image[0, 5:10, 10:20] = torch.arange(50, dtype=torch.float32).reshape(5, 10)
    mask = torch.zeros(1, 20, 30)
    mask[0, 5:10, 10:20] = 1
    out = LesionBoxResized(spatial_size=(8, 6))({"image": image, "mask": mask, "id": "tn_1"})
    assert out["image"].shape == (1, 8, 6) and out["mask"].shape == (1, 8, 6)
    assert float(out["image"].min()) == 0.0 and float(out["image"].max()) == 1.0  # the 1e4 background is cropped away
    assert torch.all(out["mask"] == 1)
    with_margin = LesionBoxResized(spatial_size=(8, 6), margin=2)({"image": image, "mask": mask})
    assert float(with_margin["mask"].min()) == 0.0  # the margin brings background into the box


def test_lesion_box_errors_and_average_size():
    with pytest.raises(ValueError, match="empty.*case 'tn_2'"):
        LesionBoxResized()({"image": torch.zeros(1, 4, 4), "mask": torch.zeros(1, 4, 4), "id": "tn_2"})
    a, b = np.zeros((20, 20)), np.zeros((20, 20))
    a[2:6, 3:9] = 1  # 4 x 6
    b[1:7, 0:9] = 1  # 6 x 9
    assert lesion_bounding_box(a) == ([2, 3], [6, 9])
    assert average_lesion_size([a, b]) == (5, 8)  # (5, 7.5) rounded half up
