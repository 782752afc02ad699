"""MONAI Label integration: serve a medssl_monai bundle's encoder (embeddings, and class probabilities from a linear
head on them) from a MONAI Label server.

``APP_DIR`` is a MONAI Label app (its ``main.py``)::

    monailabel start_server --app "$(python -c 'import medssl_monai.monailabel as m; print(m.APP_DIR)')" \\
        --studies path/to/volumes --conf bundle bundles/3dsiam [--conf classifier head.pt]

The tasks import ``monailabel`` (``pip install --no-deps monailabel==0.8.5`` plus the ``[monailabel]`` extra; see the
README): :mod:`.tasks` is imported only by the app, not by ``import medssl_monai``.
"""

from __future__ import annotations

from pathlib import Path

from ..evaluation import fit_linear_head
from ..networks import LinearHead
from .encoder import BundleEncoder

APP_DIR = str(Path(__file__).parent / "app")

__all__ = ["APP_DIR", "BundleEncoder", "LinearHead", "fit_linear_head"]
