"""Image + mask datalists from files (NIfTI, NRRD, DICOM series folders), and the dispatcher of all readers."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .images2d import SPLIT_FOLDERS, class_folder_datalist
from .medmnist import SPLITS, medmnist_datalist
from .phantoms import synthetic_datalist
from .splitting import stratified_split

__all__ = [
    "build_datalist",
    "datalists_2d",
    "dataset_datalists",
    "folder_datalist",
    "held_out_datalist",
    "json_datalist",
]

_FILE_KEYS = ("image", "mask")


def _check_files_exist(items: list[dict], origin: str) -> list[dict]:
    missing = [
        f"{item.get('id', '?')}: {key} '{item[key]}'"
        for item in items
        for key in _FILE_KEYS
        if key in item and not Path(item[key]).exists()
    ]
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise FileNotFoundError(f"{len(missing)} file(s) listed by {origin} do not exist:\n  {shown}")
    return items


def json_datalist(path: str | Path, split: str = "training") -> list[dict]:
    """A decathlon-style JSON datalist: ``{"training": [{"image": ..., "mask": ..., "label": 0, "id": ...}]}``.

    Relative ``image`` and ``mask`` paths are resolved against the JSON file's folder. ``label`` is a class index
    (segmentations go under ``mask``, unlike the Decathlon where ``label`` is the segmentation). Missing ids are
    derived from the image file name. A plain JSON list is accepted as the split itself.
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read datalist '{path}': {err}") from err
    entries = content if isinstance(content, list) else content.get(split)
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"datalist '{path}' has no non-empty list under '{split}'.")
    items = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry:
            raise ValueError(f"datalist '{path}', entry {i} of '{split}': expected a dict with an 'image' key.")
        item = dict(entry)
        for key in _FILE_KEYS:
            if key in item:
                item[key] = str((path.parent / item[key]).resolve())
        item.setdefault("id", _case_id(Path(entry["image"])))
        items.append(item)
    return _check_files_exist(items, f"datalist '{path}'")


def _case_id(image: Path) -> str:
    name = image.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def folder_datalist(
    root: str | Path,
    image_glob: str = "images/*",
    mask_replace: Sequence[str] | None = ("images", "masks"),
    labels_csv: str = "labels.csv",
) -> list[dict]:
    """Pair images with masks by a path rule.

    Every path under ``root`` matching ``image_glob`` is an image (a file, or a folder holding one DICOM series);
    its mask is the same relative path with the first ``mask_replace[0]`` replaced by ``mask_replace[1]`` (no masks
    when ``mask_replace`` is None). Examples:

    * default layout ``images/<case>.nii.gz`` + ``masks/<case>.nii.gz``;
    * PyRadiomics test cases: ``image_glob="*_image.nrrd"``, ``mask_replace=("_image", "_label")``;
    * BraTS (DeepMedic layout): ``image_glob="**/Flair_subtrMeanDivStd.nii.gz"``,
      ``mask_replace=("Flair_subtrMeanDivStd", "OTMultiClass")`` (any non-zero label is tumour).

    The case id is the image's file name without extension, or, when those are not unique (BraTS: every case has a
    ``Flair_subtrMeanDivStd.nii.gz``), its relative path without extension with ``/`` replaced by ``_``. An optional
    ``labels.csv`` (columns ``id,label``) adds class labels.
    """
    root = Path(root)
    images = sorted(p for p in root.glob(image_glob) if p.is_file() or p.is_dir())
    if not images:
        raise FileNotFoundError(f"no images matching '{image_glob}' under '{root}'.")
    labels = _read_labels(root / labels_csv) if (root / labels_csv).is_file() else {}
    stems = [_case_id(p) for p in images]
    unique = len(set(stems)) == len(stems)
    items = []
    for image, stem in zip(images, stems):
        rel = image.relative_to(root)
        case = stem if unique else str(rel.with_name(stem)).replace("/", "_")
        item: dict = {"image": str(image), "id": case}
        if mask_replace is not None:
            old, new = mask_replace
            if old not in str(rel):
                raise ValueError(f"cannot derive the mask of '{image}': '{old}' does not occur in '{rel}'.")
            item["mask"] = str(root / str(rel).replace(old, new, 1))
        if case in labels:
            item["label"] = labels[case]
        items.append(item)
    return _check_files_exist(items, f"folder '{root}' (image_glob={image_glob!r}, mask_replace={mask_replace!r})")


def _read_labels(path: Path) -> dict[str, int]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"id", "label"} <= set(rows[0]):
        raise ValueError(f"'{path}' must have the columns 'id' and 'label', has {list(rows[0])}.")
    return {row["id"]: int(row["label"]) for row in rows}


def build_datalist(
    dataset_dir: str | Path | None = None,
    split: str = "train",
    image_glob: str = "images/*",
    mask_replace: Sequence[str] | None = ("images", "masks"),
    limit: int | None = None,
    synthetic: dict | None = None,
) -> list[dict]:
    """The datalist for whatever ``dataset_dir`` points at.

    * ``None``: synthetic phantoms (:func:`~medssl_monai.data.synthetic_datalist` with the ``synthetic`` kwargs);
    * an ``.npz`` file, or a folder holding exactly one: MedMNIST (``split`` is ``train``/``val``/``test``);
    * a ``.json`` file: a datalist (``split`` ``train`` reads the ``training`` list, others their own name);
    * any other folder: :func:`folder_datalist` with ``image_glob`` and ``mask_replace``.

    ``limit`` keeps the first ``limit`` cases (quick runs and tests).
    """
    if dataset_dir is None or str(dataset_dir) == "":
        items = synthetic_datalist(**(synthetic or {}))
    else:
        path = Path(dataset_dir).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"dataset_dir '{path}' does not exist.")
        npz = [path] if path.suffix == ".npz" else (sorted(path.glob("*.npz")) if path.is_dir() else [])
        if len(npz) > 1:
            raise ValueError(
                f"dataset_dir '{path}' holds several npz files ({[p.name for p in npz]}): pass one of them."
            )
        if npz:
            items = medmnist_datalist(npz[0], split=split, limit=limit)
        elif path.suffix == ".json":
            items = json_datalist(path, split="training" if split == "train" else split)
        elif path.is_dir():
            items = folder_datalist(path, image_glob=image_glob, mask_replace=mask_replace)
        else:
            raise ValueError(f"dataset_dir '{path}' is neither a folder, an .npz nor a .json datalist.")
    return items if limit is None else items[: int(limit)]


def held_out_datalist(
    dataset_dir: str | Path | None = None,
    n: int = 256,
    image_glob: str = "images/*",
    mask_replace: Sequence[str] | None = ("images", "masks"),
    synthetic: dict | None = None,
) -> list[dict]:
    """A fixed set of at most ``n`` cases on which to watch representation health during pre-training
    (:class:`~medssl_monai.engines.HeldOutHealth`), kept apart from the training data where the data allows:

    * no ``dataset_dir``: ``n`` new phantoms (``synthetic`` kwargs with the seed shifted by 1000: unseen cases);
    * MedMNIST npz: its ``val`` split (pre-training reads ``train`` by default), if it has one;
    * a JSON datalist with a ``validation`` list: that list;
    * otherwise (an image folder, a JSON without ``validation``): ``n`` cases evenly spaced over the training
      datalist, which the health check then sees unaugmented but not unseen.

    The first ``n`` of the result are kept; labels come along when the data has them (for the kNN figure).
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"the held-out health set needs n >= 2 cases, got {n}.")
    if dataset_dir is None or str(dataset_dir) == "":
        spec = {**(synthetic or {})}
        spec["seed"] = int(spec.get("seed", 0)) + 1000
        spec["n"] = min(n, int(spec.get("n", n)))
        return synthetic_datalist(**spec)
    path = Path(dataset_dir).expanduser()
    npz = _npz_in(path) if path.exists() else None
    if npz is not None:
        with np.load(npz) as archive:
            has_val = "val_images" in archive.files
        if has_val:
            return medmnist_datalist(npz, split="val", limit=n)
    if path.suffix == ".json" and path.is_file() and "validation" in json.loads(path.read_text()):
        return json_datalist(path, split="validation")[:n]
    items = build_datalist(path, image_glob=image_glob, mask_replace=mask_replace)
    step = max(1, len(items) // n)
    return items[::step][:n]


def _npz_in(path: Path) -> Path | None:
    """The npz that ``path`` is or that its folder holds (exactly one), else None."""
    npz = [path] if path.suffix == ".npz" else (sorted(path.glob("*.npz")) if path.is_dir() else [])
    if len(npz) > 1:
        raise ValueError(f"dataset_dir '{path}' holds several npz files ({[p.name for p in npz]}): pass one of them.")
    return npz[0] if npz else None


def _split_by(items: list[dict], fractions: Sequence[float], seed: int) -> list[list[dict]]:
    parts = stratified_split([item["label"] for item in items], fractions, seed)
    return [[items[i] for i in part] for part in parts]


def dataset_datalists(
    dataset_dir: str | Path,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    resplit: bool = False,
    channels: int = 1,
    class_level: int = 0,
    pattern: str = "**/*",
) -> dict[str, list[dict]]:
    """``{"train", "val", "test"}`` datalists of a labelled 2D set, whatever ``dataset_dir`` points at.

    * an ``.npz`` file, or a folder holding exactly one: MedMNIST's own split; images in memory as
      ``(channels, H, W)`` arrays (:func:`~medssl_monai.data.medmnist_datalist`);
    * any other folder: a class-folder tree (:func:`~medssl_monai.data.class_folder_datalist` with ``class_level``
      and ``pattern``); images are file paths, to be read with :class:`~medssl_monai.transforms.LoadImage2Dd`
      (``channels`` is then the loader's business). A tree without ``train``/``val``/``test`` folders is split
      stratified by ``fractions`` (70/10/20, Chattopadhyay et al. Sec. 2.2) under ``seed``; a tree with ``train``
      and ``test`` but no ``val`` (Kermany's published layout) gets its val part carved stratified from train, in
      the proportion ``fractions[1] / (fractions[0] + fractions[1])``.

    ``resplit=True`` pools every given split and re-splits by ``fractions`` (what Chattopadhyay et al. did with
    Kermany's 5856 X-rays). ``fractions`` is ``(train, val, test)``.
    """
    path = Path(dataset_dir).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset_dir '{path}' does not exist.")
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {tuple(fractions)}.")
    npz = _npz_in(path)
    if npz is not None:
        if resplit:
            return dict(zip(SPLITS, _split_by(medmnist_datalist(npz, "all", channels=channels), fractions, seed)))
        return {s: medmnist_datalist(npz, s, channels=channels) for s in SPLITS}
    if not path.is_dir():
        raise ValueError(f"dataset_dir '{path}' is neither an .npz file nor a folder.")
    items = class_folder_datalist(path, class_level=class_level, pattern=pattern)
    if resplit or "split" not in items[0]:
        return dict(zip(SPLITS, _split_by(items, fractions, seed)))
    given = {s: [item for item in items if item["split"] == s] for s in SPLIT_FOLDERS}
    if not given["test"]:
        raise ValueError(f"'{path}' has split folders but no 'test' images; pass resplit=True to split it.")
    if not given["val"]:
        share = fractions[1] / (fractions[0] + fractions[1])
        given["train"], given["val"] = _split_by(given["train"], (1.0 - share, share), seed)
    return given


def datalists_2d(
    dataset_dir: str | Path | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    channels: int = 1,
    synthetic: dict | None = None,
    class_level: int = 0,
    pattern: str = "**/*",
) -> dict[str, list[dict]]:
    """``{"train", "val", "test"}`` datalists of a labelled 2D set, or of synthetic images when ``dataset_dir`` is None.

    With a ``dataset_dir``: :func:`dataset_datalists` (the set's own split when it has one, else stratified
    ``fractions`` under ``seed``). Without: :func:`~medssl_monai.data.synthetic_2d_datalist` (``synthetic`` kwargs,
    ``seed`` by default) split stratified by ``fractions`` under ``seed``.
    """
    if dataset_dir is not None:
        return dataset_datalists(
            dataset_dir, fractions=fractions, seed=seed, channels=channels, class_level=class_level, pattern=pattern
        )
    from .synthetic2d import synthetic_2d_datalist

    items = synthetic_2d_datalist(**{"seed": seed, **(synthetic or {})})
    return dict(zip(SPLITS, _split_by(items, fractions, seed)))
