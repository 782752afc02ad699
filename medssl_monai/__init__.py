"""medssl_monai: self-supervised representation learning for medical images, shipped as MONAI bundles.

The library is grouped by concern (MONAI's own habit): ``data`` (readers, synthetic phantoms),
``transforms`` (MONAI-style dictionary transforms), ``networks`` (backbones and heads),
``losses`` (one loss per file), ``engines`` (Ignite trainers and handlers).
Bundles under ``bundles/`` hold configs only; every ``_target_`` points here or into MONAI.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import data, engines, losses, networks, transforms, utils

__all__ = ["__version__", "data", "engines", "losses", "networks", "transforms", "utils"]
