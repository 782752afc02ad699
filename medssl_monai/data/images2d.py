"""2D images: channel handling for grey and RGB sources, and the class-folder tree reader.

Small 2D medical sets (Chattopadhyay et al., ICIP 2023, Sec. 2.2) come either as MedMNIST npz arrays or as image files
sorted into one folder per class: Kather's colorectal tiles (``01_TUMOR/``, ``02_STROMA/``, ... eight folders of TIFs),
Kermany's chest X-rays (``train/`` and ``test/``, each with ``NORMAL/`` and ``PNEUMONIA/`` JPEGs), BreaKHis
(``benign/`` and ``malignant/``, below them ``SOB/<tumour type>/<patient>/<40X|100X|200X|400X>/`` PNGs).

Channels: grey data stay one channel. RGB sources (histology) are converted to one luminance channel by default,
``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, the weights of Pillow's ``convert("L")``), or kept as three
channels with ``channels=3`` (a grey source is then repeated). Arrays are channel-first ``(C, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_FOLDERS", "class_folder_datalist", "read_image_2d", "to_channels"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLIT_FOLDERS = ("train", "val", "test")
_LUMA = np.array([0.299, 0.587, 0.114])


def to_channels(image: np.ndarray, channels: int = 1) -> np.ndarray:
    """A 2D image ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (alpha dropped) as ``(channels, H, W)``.

    RGB to grey is the BT.601 luminance, rounded for integer images so the dtype is kept (uint8 stays uint8).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}.")
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (1, 3, 4):
        img = img[..., :3]
    elif img.ndim == 2:
        img = img[..., None]
    else:
        raise ValueError(f"expected a 2D image (H, W) or (H, W, C) with C in 1, 3, 4; got shape {img.shape}.")
    if img.shape[-1] == 3 and channels == 1:
        grey = img.astype(np.float64) @ _LUMA
        if np.issubdtype(img.dtype, np.integer):
            grey = np.clip(np.rint(grey), np.iinfo(img.dtype).min, np.iinfo(img.dtype).max)
        img = grey.astype(img.dtype)[..., None]
    elif img.shape[-1] == 1 and channels == 3:
        img = np.repeat(img, 3, axis=-1)
    return np.ascontiguousarray(np.moveaxis(img, -1, 0))


def read_image_2d(path: str | Path, channels: int = 1) -> np.ndarray:
    """Read a PNG/JPEG/TIFF/BMP file with Pillow as a ``(channels, H, W)`` array (see :func:`to_channels`).

    Palette, 1-bit and alpha images are converted to RGB or L first; 16-bit and float images keep their dtype.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr", "1"):
                im = im.convert("L" if im.mode in ("1", "LA") else "RGB")
            array = np.asarray(im)
    except Exception as err:  # unreadable or not an image
        raise ValueError(f"cannot read image '{path}': {type(err).__name__}: {err}") from err
    return to_channels(array, channels)


def class_folder_datalist(
    root: str | Path,
    class_level: int = 0,
    pattern: str = "**/*",
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> list[dict]:
    """Datalist of a tree with one folder per class: ``{"image": path, "label": int, "class_name", "id"[, "split"]}``.

    Every file below ``root`` matching ``pattern`` (a ``Path.glob`` pattern relative to ``root``) whose suffix is in
    ``extensions`` (case-insensitive) is an image. Its class is the folder name at depth ``class_level`` of its path
    relative to ``root`` (0: the first sub-folder); labels are the indices of the sorted class names. Images may lie
    any depth below their class folder.

    When every top-level folder is named ``train``, ``val`` or ``test`` (Kermany's layout) and ``train`` is one of
    them, that folder is the item's ``split`` and ``class_level`` counts from below it.

    Examples: Kather -> ``root=".../Kather_texture_2016_image_tiles_5000"``; Kermany -> ``root=".../chest_xray"``
    (class = ``NORMAL``/``PNEUMONIA`` below ``train``/``test``); BreaKHis at 400x, benign vs malignant (the setting
    of Chattopadhyay et al.) -> ``root=".../histology_slides/breast", pattern="**/400X/*"``; its eight tumour types
    are ``class_level=2`` (``benign/SOB/adenosis/...``).

    The id is the relative path without suffix (unique). Raises ``FileNotFoundError`` when nothing matches and
    ``ValueError`` when an image lies less than ``class_level + 1`` folders deep, or when there is a single class.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"class-folder root '{root}' is not a folder.")
    if class_level < 0:
        raise ValueError(f"class_level must be >= 0, got {class_level}.")
    suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(suffixes))}) matching '{pattern}' under '{root}'.")
    top = {p.relative_to(root).parts[0] for p in files}
    has_splits = "train" in top and top <= set(SPLIT_FOLDERS)
    entries = []
    for path in files:
        parts = path.relative_to(root).parts
        split, folders = (parts[0], parts[1:-1]) if has_splits else (None, parts[:-1])
        if len(folders) <= class_level:
            raise ValueError(
                f"image '{path}' lies {len(folders)} folder(s) below {'its split folder' if split else 'the root'}; "
                f"class_level={class_level} needs at least {class_level + 1} (one sub-folder per class)."
            )
        entries.append((path, folders[class_level], split))
    classes = sorted({name for _, name, _ in entries})
    if len(classes) < 2:
        raise ValueError(f"'{root}' holds a single class ({classes[0]!r}) at class_level={class_level}.")
    index = {name: i for i, name in enumerate(classes)}
    items = []
    for path, name, split in entries:
        item = {
            "image": str(path),
            "label": index[name],
            "class_name": name,
            "id": path.relative_to(root).with_suffix("").as_posix(),
        }
        if split is not None:
            item["split"] = split
        items.append(item)
    return items
