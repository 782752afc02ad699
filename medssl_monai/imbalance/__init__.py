"""Label-free imbalance handling of Li et al., MICCAI 2021 (Sec. 2, "RE/SE Module"): k-means on the encoder's
features of a batch, then sample re-weighting (RE, :func:`reweight`) or batch selection (SE, :func:`select`).

Both act on features only, so they serve any SSL method of this package; the training-time hook is
:class:`medssl_monai.engines.ImbalanceHandler`. :func:`batch_ratio_diagnostic` reproduces the paper's
Supplementary Table 3 (class ratio of SE-selected batches; labels are used for the report only).
"""

from .diagnostic import batch_ratio_diagnostic
from .strategies import cluster, reweight, select

__all__ = ["batch_ratio_diagnostic", "cluster", "reweight", "select"]
