"""Real-data tier: PyRadiomics extraction (medssl_monai.radiomics) on ../shared/data (MEDSSL_DATA_DIR).

* PyRadiomics' own test cases against its reference values (baseline/*.csv), full set (5 cases x 7 classes);
* AdrenalMNIST3D volumes (0/255 shapes, no mask): flat ROIs must not fail;
* the 6 BraTS 2015 patients: FLAIR inside the whole tumour (OTMultiClass != 0).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BUNDLE_3DSIAM

from medssl_monai.data import folder_datalist, medmnist_datalist
from medssl_monai.radiomics import compare_with_baseline, extract_features, load_params

pytestmark = pytest.mark.realdata
YAML = BUNDLE_3DSIAM / "configs" / "radiomics.yaml"

#: Reference features per class over the 5 plain case columns.
EXPECTED_COMPARED = {"firstorder": 90, "glcm": 120, "glrlm": 80, "glszm": 80, "gldm": 70, "ngtdm": 25, "shape": 70}
#: Mesh-based shape features of brain1 (a 2-component ROI) differ from the shape baseline by 1.2e-4 to 9.1e-4
#: (relative). That baseline records PyRadiomics 2.0.1b1.post11, a development build from the switch to mesh-based
#: shape features (PR #427, released in 2.1.0); the cause is not identified further. PyRadiomics' own test suite
#: accepts 3 %. Every other reference value agrees to 5e-15 (texture, first order) or 4e-12 (shape: the baseline
#: holds 12 significant digits).
KNOWN_MESH_DIFFERENCES = {
    ("brain1", "original_shape_MeshVolume"),
    ("brain1", "original_shape_SurfaceArea"),
    ("brain1", "original_shape_SurfaceVolumeRatio"),
    ("brain1", "original_shape_Sphericity"),
}


def test_pyradiomics_baselines_are_reproduced(shared_data, tmp_path):
    baseline = shared_data / "pyradiomics_testcases" / "baseline"
    strict = compare_with_baseline(baseline, rtol=1e-9, cache_dir=tmp_path, max_workers=2)
    assert strict.failures == []
    summary = strict.summary()
    assert {k: v[0] for k, v in summary.items()} == EXPECTED_COMPARED
    assert {r.case for r in strict.records} == {"brain1", "brain2", "breast1", "lung1", "lung2"}
    mismatches = {(r.case, r.feature) for r in strict.mismatches()}
    assert mismatches <= KNOWN_MESH_DIFFERENCES, strict.mismatches()
    for cls, (compared, matched) in summary.items():
        expected = compared - sum(1 for _, f in KNOWN_MESH_DIFFERENCES if f"_{cls}_" in f)
        assert matched >= expected, (cls, compared, matched)

    loose = compare_with_baseline(baseline, rtol=1e-3, cache_dir=tmp_path, max_workers=2)  # read from the cache
    assert loose.all_match, loose.mismatches()
    assert sum(c for c, _ in loose.summary().values()) == 535


def test_adrenalmnist3d_flat_shapes(shared_data, tmp_path):
    npz = shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"
    datalist = medmnist_datalist(npz, split="train", limit=40)
    result = extract_features(datalist, YAML, cache_dir=tmp_path, max_workers=2, progress=False)
    assert result.failures == [] and result.ids == [item["id"] for item in datalist]
    assert result.values.shape == (40, 107) and np.isfinite(result.values).all()
    assert result.labels.tolist() == [item["label"] for item in datalist]
    feature = dict(zip(result.names, result.values.T))
    volumes = np.array([np.count_nonzero(item["image"]) for item in datalist])
    np.testing.assert_array_equal(feature["original_shape_VoxelVolume"], volumes)  # ROI = non-zero voxels, 1 mm
    # the ROI is the gland at a constant 255: texture features take PyRadiomics' flat-region values
    assert (feature["original_firstorder_Mean"] == 255).all() and (feature["original_firstorder_Variance"] == 0).all()
    assert (feature["original_glcm_JointEnergy"] == 1).all() and (feature["original_ngtdm_Contrast"] == 0).all()
    assert feature["original_shape_Sphericity"].std() > 0  # shape differs between cases


def test_brats_flair_whole_tumour(shared_data, tmp_path):
    root = shared_data / "brats2015_subset"
    datalist = folder_datalist(
        root, image_glob="**/Flair_subtrMeanDivStd.nii.gz", mask_replace=("Flair_subtrMeanDivStd", "OTMultiClass")
    )
    assert len(datalist) == 6
    # FLAIR is z-scored inside the brain (tumour values about -4..11): bin width 0.1 gives PyRadiomics' advised
    # 30-130 bins, where the CT/8-bit default of 25 would leave a single bin
    params = load_params(YAML, overrides={"binWidth": 0.1})
    result = extract_features(datalist, params, cache_dir=tmp_path, max_workers=2, progress=False, binarize_mask=True)
    assert result.failures == [] and len(result.ids) == 6
    assert result.values.shape == (6, 107) and np.isfinite(result.values).all()
    feature = dict(zip(result.names, result.values.T))
    # whole tumour = labels 1-4 (voxel counts from the folder's SOURCE.txt), 1 mm isotropic
    expected = {
        "pat0001": 111724,
        "pat0002": 63061,
        "pat0005": 80682,
        "pat0006": 217380,
        "pat0003": 173928,
        "pat0004": 120674,
    }
    for case, volume in zip(result.ids, feature["original_shape_VoxelVolume"]):
        assert volume == next(v for k, v in expected.items() if k in case), case
    assert (feature["original_firstorder_Variance"] > 0).all()
    assert (feature["original_glcm_JointEntropy"] > 3).all()  # many grey levels: texture is not degenerate
