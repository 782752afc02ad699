"""MONAI Label app serving a medssl_monai bundle's encoder.

``--conf bundle DIR`` (default: this repository's ``bundles/3dsiam``), ``--conf ckpt FILE`` (default: the bundle's
``models/model.pt``), ``--conf classifier FILE`` (a ``LinearHead.save`` file: adds the ``classification`` model),
``--conf device cpu|cuda``, ``--conf roi_size 96`` (the crop box around a ``label`` mask sent with a request; the
inference config's default otherwise). Models: ``embedding`` and, with a classifier, ``classification``.
"""

from __future__ import annotations

from pathlib import Path

from monailabel.interfaces.app import MONAILabelApp

import medssl_monai
from medssl_monai.monailabel.tasks import BundleEncoderTask

_DEFAULT_BUNDLE = Path(medssl_monai.__file__).resolve().parent.parent / "bundles" / "3dsiam"


class MedSSLApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: dict) -> None:
        self.bundle = conf.get("bundle") or str(_DEFAULT_BUNDLE)
        self.ckpt = conf.get("ckpt") or None
        self.classifier = conf.get("classifier") or None
        self.device = conf.get("device", "cpu")
        self.overrides = {"roi_size": [int(conf["roi_size"])] * 3} if conf.get("roi_size") else None
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="medssl_monai",
            description=f"Self-supervised encoder of the bundle {Path(self.bundle).name}",
            version=medssl_monai.__version__,
        )

    def init_infers(self) -> dict:
        options = {"ckpt": self.ckpt, "device": self.device, "overrides": self.overrides}
        infers = {"embedding": BundleEncoderTask(self.bundle, **options)}
        if self.classifier:
            infers["classification"] = BundleEncoderTask(self.bundle, classifier=self.classifier, **options)
        return infers
