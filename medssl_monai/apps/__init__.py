"""Per-paper pipelines, one sub-package per bundle, built from the paper-agnostic library packages (data, transforms,
networks, losses, engines, radiomics, reduction, evaluation):

- :mod:`.siam3d`: Li et al., MICCAI 2021 (the ``3dsiam`` bundle);
- :mod:`.small_data_ssl`: Chattopadhyay et al., ICIP 2023;
- :mod:`.radiomics_deep_contrast`: Zhao & Yang, MICCAI 2021.

- :mod:`.ct_slice_reduction`: Wolf et al. 2024 (pre-training and fine-tuning; the reduction itself is the library
  package :mod:`medssl_monai.reduction`).
"""

from . import ct_slice_reduction, radiomics_deep_contrast, siam3d, small_data_ssl

__all__ = ["ct_slice_reduction", "radiomics_deep_contrast", "siam3d", "small_data_ssl"]
