"""MedMNIST npz reader (Yang et al., Scientific Data 2023): keys ``{train,val,test}_{images,labels}``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images2d import to_channels

__all__ = ["SPLITS", "default_roi_size", "medmnist_datalist"]

SPLITS = ("train", "val", "test")


def medmnist_datalist(
    path: str | Path, split: str = "train", limit: int | None = None, channels: int | None = None
) -> list[dict]:
    """Datalist of one split of a MedMNIST npz file, or of all three pooled (``split="all"``: train, val, test in
    that order, as Li et al. pool their data for cross-validation).

    Items hold the image array as stored (``(D, H, W)`` for 3D sets, ``(H, W)`` for 2D), its class index and an id
    ``"<split>_<index>"``. MedMNIST volumes have no masks. ``limit`` keeps the first ``limit`` cases.

    ``channels`` (2D sets only, ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB such as PathMNIST): 1 or 3 gives each
    image channel-first, ``(channels, H, W)``, RGB turned grey by luminance for 1
    (:func:`~medssl_monai.data.to_channels`); ``None`` keeps the stored layout.
    """
    path = Path(path)
    if split == "all":
        items = [item for s in SPLITS for item in medmnist_datalist(path, s, channels=channels)]
        return items if limit is None else items[: int(limit)]
    if split not in SPLITS:
        raise ValueError(f"MedMNIST split must be one of {SPLITS} or 'all', got {split!r}.")
    try:
        archive = np.load(path)
    except Exception as err:  # corrupt zip, not an npz ...
        raise ValueError(f"cannot read MedMNIST file '{path}': {err}") from err
    with archive:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(f"'{path}' is not a MedMNIST npz: keys {missing} missing (has {sorted(archive.files)}).")
        images, labels = archive[keys[0]], archive[keys[1]].reshape(len(archive[keys[1]]), -1)
    if len(images) != len(labels):
        raise ValueError(f"'{path}': {len(images)} {split} images but {len(labels)} labels.")
    count = len(images) if limit is None else min(int(limit), len(images))
    if channels is not None:
        if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
            raise ValueError(
                f"'{path}': channels={channels} needs 2D images (N, H, W) or (N, H, W, 3), got {images.shape[1:]}."
            )
        images = [to_channels(images[i], channels) for i in range(count)]
    return [
        {
            "image": images[i],
            "label": int(labels[i, 0]),
            "id": f"{split}_{i:05d}",
            "source": f"{path.name}[{split}_images {i}]",
        }
        for i in range(count)
    ]


def default_roi_size(dataset_dir: str | Path | None, spatial_dims: int = 3) -> list[int]:
    """The lesion crop of the 3D bundles when none is given: 32 per axis for the synthetic phantoms (``dataset_dir``
    None), the stored volume edge for a MedMNIST npz (28 or 64: cropping a larger box would only pad), and 96 for
    tumour volumes (Li et al., MICCAI 2021, Sec. 3: "96 x 96 x 96" crops around the tumour)."""
    if dataset_dir is None:
        return [32] * spatial_dims
    path = Path(dataset_dir)
    if path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path, mmap_mode="r") as archive:
                shape = archive["train_images"].shape[1:]
        except Exception as err:
            raise ValueError(f"cannot read MedMNIST file '{path}': {err}") from err
        return [int(max(shape[:spatial_dims]))] * spatial_dims
    return [96] * spatial_dims
