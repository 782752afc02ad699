"""Real-data tier: slice similarity of medssl_monai.reduction on real CT (MEDSSL_DATA_DIR).

Slices are planes across the last array axis (``arr[..., k]``) of the TotalSegmentator example CTs (NIfTI, nibabel)
and of PyRadiomics' lung CTs (512x512, NRRD, pynrrd), converted with ``to_uint8`` (per-slice min-max):

* dHash equals ``imagehash.dhash`` slice by slice, also with a HU window;
* SSIM and NMI equal scikit-image on neighbouring and distant slice pairs;
* HASH-6 reduction leaves no kept pair within 6 bits, and the released variant likewise.
"""

from __future__ import annotations

import nibabel as nib
import nrrd
import numpy as np
import pytest

from medssl_monai.reduction import dhash, pairwise_hamming, pairwise_nmi, pairwise_ssim, reduce_volume, to_uint8

pytestmark = pytest.mark.realdata
imagehash = pytest.importorskip("imagehash")
Image = pytest.importorskip("PIL.Image")
metrics = pytest.importorskip("skimage.metrics")

VOLUMES = [
    ("ct_examples/example_ct.nii.gz", "nifti"),
    ("ct_examples/example_ct_sm.nii.gz", "nifti"),
    ("pyradiomics_testcases/lung1_image.nrrd", "nrrd"),
    ("pyradiomics_testcases/lung2_image.nrrd", "nrrd"),
]


def _slices(root, rel, kind) -> np.ndarray:
    path = root / rel
    arr = np.asarray(nib.load(path).dataobj) if kind == "nifti" else nrrd.read(str(path))[0]
    return np.moveaxis(arr, -1, 0)  # (N, H, W): slice k = arr[..., k]


@pytest.mark.parametrize(("rel", "kind"), VOLUMES, ids=[v[0].split("/")[-1] for v in VOLUMES])
def test_dhash_equals_imagehash_on_real_slices(shared_data, rel, kind):
    raw = _slices(shared_data, rel, kind)
    for window in (None, (-1000, 400)):
        x = to_uint8(raw, window=window)
        assert x.dtype == np.uint8 and x.shape == raw.shape
        ref = [int(str(imagehash.dhash(Image.fromarray(s))), 16) for s in x]
        assert dhash(x).tolist() == ref


@pytest.mark.parametrize(("rel", "kind"), VOLUMES[1:3], ids=["example_ct_sm", "lung1"])
def test_ssim_nmi_equal_scikit_image_on_real_pairs(shared_data, rel, kind):
    x = to_uint8(_slices(shared_data, rel, kind))[::6][:5]
    ps, pn = pairwise_ssim(x), pairwise_nmi(x)
    for i, j in [(0, 1), (1, 2), (0, 4)]:
        ref = metrics.structural_similarity(
            x[i], x[j], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert abs(ps[i, j] - ref) < 1e-9
        assert abs(pn[i, j] - metrics.normalized_mutual_information(x[i], x[j], bins=256)) < 1e-9


def test_hash6_reduction_on_real_volume(shared_data):
    x = to_uint8(_slices(shared_data, *VOLUMES[2]))
    d = pairwise_hamming(dhash(x))
    for variant in ("exact", "released"):
        keep = reduce_volume(x, "hash", variant=variant)
        k = np.flatnonzero(keep)
        assert 1 <= len(k) < len(x)
        assert (d[np.ix_(k, k)][np.triu_indices(len(k), 1)] > 6).all()


def test_screened_ssim_reduction_equals_exact_matrix_on_real_volume(shared_data):
    """reduce_volume('ssim') (float32 screening, float64 refinement) keeps exactly what the float64 matrix keeps on
    PyRadiomics' lung1 (48 slices of 512x512), at the paper's 10 % and at thresholds; every screened value lies in
    its bound."""
    pytest.importorskip("numba")
    from medssl_monai.reduction import reduce_pairs
    from medssl_monai.reduction.similarity import screen_ssim

    x = to_uint8(_slices(shared_data, *VOLUMES[2]))
    exact = pairwise_ssim(x)
    approx, bound, _ = screen_ssim(x)
    iu = np.triu_indices(len(x), 1)
    assert (np.abs(approx - exact)[iu] <= bound[iu]).all()
    for f in (0.1, 0.25):
        assert reduce_volume(x, "ssim", target_fraction=f).tolist() == reduce_pairs(exact, target_fraction=f).tolist()
    for t in (0.6, 0.7, 0.8):
        for variant in ("exact", "released"):
            want = reduce_pairs(exact, threshold=t, variant=variant).tolist()
            assert reduce_volume(x, "ssim", threshold=t, variant=variant).tolist() == want
