"""MONAI Label infer task over a medssl_monai bundle: the encoder's embedding of one volume and, with a
:class:`~.head.LinearHead`, class probabilities. Results are JSON (no label image). Imports ``monailabel``."""

from __future__ import annotations

import os
from typing import Any

import torch
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from ..networks import LinearHead
from .encoder import BundleEncoder

__all__ = ["BundleEncoderTask"]


class BundleEncoderTask(InferTask):
    """``{"bundle", "dimension", "embedding": [...]}`` of the request's ``image`` (a ``label`` file in the request is
    the lesion mask to crop around), plus ``probabilities`` (per class name) and ``prediction`` with ``classifier``
    (a :meth:`~medssl_monai.networks.LinearHead.save` file)."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        ckpt: str | os.PathLike | None = None,
        classifier: str | os.PathLike | None = None,
        device: str = "cpu",
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.encoder = BundleEncoder(bundle_dir, ckpt=ckpt, device=device, overrides=overrides)
        self.head = LinearHead.load(classifier) if classifier else None
        name = self.encoder.bundle_dir.name
        super().__init__(
            type=InferType.CLASSIFICATION if self.head else InferType.OTHERS,
            labels=self.head.class_names if self.head else None,
            dimension=3,
            description=(
                f"{name}: class probabilities of a linear head on the encoder's embedding"
                if self.head
                else f"{name}: the encoder's embedding of the volume (JSON)"
            ),
        )

    def is_valid(self) -> bool:
        return self.encoder.ckpt.is_file()

    def __call__(self, request: dict) -> tuple[None, dict]:
        z = self.encoder(request["image"], request.get("label"))
        result: dict[str, Any] = {
            "bundle": self.encoder.bundle_dir.name,
            "dimension": z.numel(),
            "embedding": z.tolist(),
        }
        if self.head is not None:
            with torch.no_grad():
                probs = self.head(z[None])[0]
            result["probabilities"] = dict(zip(self.head.class_names, probs.tolist()))
            result["prediction"] = self.head.class_names[int(probs.argmax())]
        return None, result
