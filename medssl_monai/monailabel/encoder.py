"""A bundle's encoder as a callable on one image file, configured by the bundle's own ``inference.json``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser

from ..errors import unknown_overrides

__all__ = ["BundleEncoder"]


class BundleEncoder:
    """Embed one image as the bundle's ``configs/inference.json`` does: its ``preprocessing`` (loading, the lesion
    crop when a ``mask`` is given, intensity scaling) and ``network_def``, with ``ckpt`` loaded (default: the bundle's
    ``models/model.pt``), in eval mode. A file embedded here and by ``monai.bundle run --config_file
    .../inference.json`` gives the same vector (tested). ``overrides`` set config keys first (e.g.
    ``{"roi_size": [96, 96, 96]}``: the crop box around a mask; the config's default is 32 voxels without a
    ``dataset_dir``)."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        ckpt: str | os.PathLike | None = None,
        config_file: str = "inference.json",
        device: str = "cpu",
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.bundle_dir = Path(bundle_dir).resolve()
        config = self.bundle_dir / "configs" / config_file
        if not config.is_file():
            raise FileNotFoundError(f"bundle '{self.bundle_dir}' has no configs/{config_file}.")
        parser = ConfigParser()
        parser.read_config(str(config))
        unknown = unknown_overrides(overrides or {}, parser.get())
        if unknown:
            raise KeyError(f"{unknown} are not keys of {config}; the keys are {sorted(parser.get())}.")
        settings = {"bundle_root": str(self.bundle_dir), "device": f"$torch.device('{device}')", **(overrides or {})}
        if ckpt:
            settings["ckpt"] = str(ckpt)
        for key, value in settings.items():
            parser[key] = value
        self.ckpt = Path(parser.get_parsed_content("ckpt"))
        self.preprocessing = parser.get_parsed_content("preprocessing")
        self.device = torch.device(device)
        self.network = parser.get_parsed_content("network").eval()  # the config's own loading (load_weights)

    @torch.no_grad()
    def __call__(self, image: str | os.PathLike, mask: str | os.PathLike | None = None) -> torch.Tensor:
        """The embedding (1-D tensor) of the image file ``image`` (cropped around ``mask``'s centroid if given)."""
        data: dict[str, Any] = {"image": str(image)}
        if mask:
            data["mask"] = str(mask)
        x = torch.as_tensor(self.preprocessing(data)["image"]).float()[None].to(self.device)
        return self.network(x)[0].cpu()
