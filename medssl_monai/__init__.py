"""medssl_monai: self-supervised representation learning for medical images, shipped as MONAI bundles.

The library is grouped by concern (MONAI's own habit): ``data`` (readers, synthetic phantoms),
``transforms`` (MONAI-style dictionary transforms), ``networks`` (backbones and heads),
``losses`` (one loss per file), ``imbalance`` (RE/SE from k-means on features), ``radiomics`` (PyRadiomics
extraction with a per-case cache over an Executor), ``engines`` (Ignite trainers and handlers), ``evaluation``
(linear SVM protocol, probes, health, supervised baseline, reports and plots), ``reduction`` (CT slice similarity and
near-duplicate removal). These are paper-agnostic; ``apps`` holds each paper's pipeline built from them.
Bundles under ``bundles/`` hold configs only; every ``_target_`` points here or into MONAI.
"""

from __future__ import annotations

__version__ = "0.6.0"

from . import data, engines, evaluation, imbalance, losses, networks, radiomics, reduction, transforms, utils  # isort: skip
from . import apps  # isort: skip  (built on the packages above)
from .errors import install_excepthook  # isort: skip

install_excepthook()  # one-paragraph user errors under `python -m monai.bundle` (MEDSSL_DEBUG=1: tracebacks)

__all__ = [
    "__version__",
    "apps",
    "data",
    "engines",
    "evaluation",
    "imbalance",
    "losses",
    "networks",
    "radiomics",
    "reduction",
    "transforms",
    "utils",
]
