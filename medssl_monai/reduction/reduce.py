"""Greedy slice reduction within one volume (Wolf et al. 2024, Sec. 2.1 "Dataset Reduction", Sec. 3.2-3.3).

The paper: "a pairwise comparison between all slices in a volume. [...] The pairs are sorted from most similar to
most dissimilar. Starting from the most similar pair, one slice is removed from the pairs until either all pairs
have similarities below a given threshold or until a given number of slices is left."

Conventions of this module:

* a similarity matrix is "larger = more similar"; a pair is *similar* when ``similarity >= threshold``. The HASH
  method passes ``-distance`` with threshold ``-t``, so "similar" means Hamming distance ``<= t`` (paper Sec. 3.3:
  threshold 6 leaves "no pairs of slices [...] more similar than the threshold"; the released code drops
  ``distance <= border``);
* ``variant="exact"`` (the paper's text): pairs ``(i, j)``, ``i < j``, sorted by similarity descending, ties broken
  by the lower ``(i, j)`` (lexicographic); a pair whose two slices are both still kept drops the **later** slice
  ``j``; pairs involving an already dropped slice are skipped. Stops when the next pair is below the threshold, or
  when ``max(1, floor(f * n + 0.5))`` slices remain (``target_fraction=f``), whichever comes first when both are
  given. After a threshold run no two kept slices are similar (every such pair was visited while both were kept);
* ``variant="released"`` (the authors' released ``Hash_*_Volume.py``): walk the slices in order; the first
  remaining slice is kept and every later remaining slice similar to it is dropped; continue with the next
  remaining slice. Threshold only.

Everything is deterministic: no randomness, ties resolved by index.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_square, check_stack

__all__ = [
    "DEFAULT_TARGET_FRACTION",
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "every_n",
    "reduce_pairs",
    "reduce_volume",
    "target_count",
]

METHODS = ("all", "every_n", "hash", "ssim", "mi", "deep")
VARIANTS = ("exact", "released")
# Paper Sec. 3.3: HASH threshold 6 (Hamming distance) is the best of 3, 6, 12. The paper gives no threshold for
# SSIM, MI and DeepNet: it reduces those to 10 % of each volume (Sec. 3.2), hence None -> DEFAULT_TARGET_FRACTION.
DEFAULT_THRESHOLDS: dict[str, float | None] = {"hash": 6, "ssim": None, "mi": None, "deep": None}
DEFAULT_TARGET_FRACTION = 0.1
DEFAULT_EVERY_N = 10  # Sec. 3.1-3.2: every 10th slice (10 %) is the EveryN baseline of Table 5


def target_count(n_slices: int, target_fraction: float) -> int:
    """Slices kept for a target fraction: ``max(1, floor(f * n + 0.5))``."""
    if not 0.0 < target_fraction <= 1.0:
        raise ValueError(f"target_fraction must be in (0, 1], got {target_fraction}.")
    return max(1, math.floor(target_fraction * n_slices + 0.5))


def _sorted_pairs(sim: np.ndarray, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(sim)
    ii, jj = np.triu_indices(n, k=1)
    vals = sim[ii, jj]
    if threshold is not None:
        sel = vals >= threshold
        ii, jj, vals = ii[sel], jj[sel], vals[sel]
    # lexsort: last key is primary -> similarity descending, then i, then j ascending
    order = np.lexsort((jj, ii, -vals))
    return ii[order], jj[order]


def reduce_pairs(
    similarity: np.ndarray,
    threshold: float | None = None,
    target_fraction: float | None = None,
    variant: str = "exact",
) -> np.ndarray:
    """Boolean keep mask (N,) from an (N, N) similarity matrix (larger = more similar; see module docstring).

    Give ``threshold``, ``target_fraction`` or both (stop at whichever is reached first); neither raises
    ``ValueError``. Only the upper triangle is read. ``variant="released"`` needs a threshold and no target.
    """
    sim = check_square(similarity)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    if threshold is None and target_fraction is None:
        raise ValueError("give a threshold, a target_fraction, or both.")
    if threshold is not None and not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}.")
    n = len(sim)
    keep = np.ones(n, dtype=bool)
    if variant == "released":
        if threshold is None or target_fraction is not None:
            raise ValueError("the released variant takes a threshold only (no target_fraction).")
        for i in range(n):
            if keep[i]:
                later = np.arange(i + 1, n)
                keep[later[keep[i + 1 :] & (sim[i, i + 1 :] >= threshold)]] = False
        return keep
    goal = target_count(n, target_fraction) if target_fraction is not None else 1
    if n <= goal:
        return keep
    ii, jj = _sorted_pairs(sim, threshold)
    kept = bytearray(b"\x01") * n
    remaining = n
    for i, j in zip(ii.tolist(), jj.tolist()):
        if kept[i] and kept[j]:
            kept[j] = 0
            remaining -= 1
            if remaining <= goal:
                break
    return np.frombuffer(bytes(kept), dtype=np.uint8).astype(bool)


def every_n(n_slices: int, n: int) -> np.ndarray:
    """EveryN baseline (Sec. 2.1): keep slices 0, n, 2n, ... of a volume of ``n_slices``."""
    if n_slices < 1:
        raise ValueError(f"n_slices must be >= 1, got {n_slices}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    keep = np.zeros(n_slices, dtype=bool)
    keep[::n] = True
    return keep


def similarity_matrix(images: np.ndarray, method: str, encoder=None, device="cpu") -> np.ndarray:
    """(N, N) similarity, larger = more similar, for ``method`` in ``hash`` (``-Hamming``), ssim, mi, deep."""
    from .deep import embed, pairwise_cosine
    from .hashing import dhash, pairwise_hamming
    from .similarity import pairwise_nmi, pairwise_ssim

    if method == "hash":
        return -pairwise_hamming(dhash(images)).astype(np.float64)
    if method == "ssim":
        return pairwise_ssim(images)
    if method == "mi":
        return pairwise_nmi(images)
    if method == "deep":
        if encoder is None:
            raise ValueError("method 'deep' needs an encoder (a torch.nn.Module); see medssl_monai.reduction.embed.")
        return pairwise_cosine(embed(images, encoder, device=device))
    raise ValueError(f"no similarity for method {method!r}; expected one of hash, ssim, mi, deep.")


def reduce_volume(
    images: np.ndarray,
    method: str = "hash",
    threshold: float | None = None,
    target_fraction: float | None = None,
    variant: str = "exact",
    n: int = DEFAULT_EVERY_N,
    encoder=None,
    device="cpu",
) -> np.ndarray:
    """Keep mask (N,) for one volume of uint8 (N, H, W) slices with one of :data:`METHODS`.

    ``all`` keeps everything, ``every_n`` keeps 0, n, 2n, ...; the similarity methods reduce with
    :func:`reduce_pairs`. ``threshold`` is in the method's own units: Hamming distance for ``hash`` (similar
    when ``<= threshold``), SSIM / NMI / cosine for the others (similar when ``>= threshold``). With neither
    threshold nor target_fraction: :data:`DEFAULT_THRESHOLDS` where the paper gives one (HASH 6), otherwise the
    paper's 10 % target (:data:`DEFAULT_TARGET_FRACTION`). A one-slice volume returns ``[True]``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    x = check_stack(images, dtype=np.uint8)
    if method == "all":
        return np.ones(len(x), dtype=bool)
    if method == "every_n":
        return every_n(len(x), n)
    if threshold is None and target_fraction is None:
        threshold = DEFAULT_THRESHOLDS[method]
        if threshold is None:
            target_fraction = DEFAULT_TARGET_FRACTION
    if len(x) == 1:
        return np.ones(1, dtype=bool)
    sim = similarity_matrix(x, method, encoder=encoder, device=device)
    if method == "hash" and threshold is not None:
        threshold = -float(threshold)
    return reduce_pairs(sim, threshold=threshold, target_fraction=target_fraction, variant=variant)
