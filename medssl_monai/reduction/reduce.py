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

import heapq
import math
from collections.abc import Callable

import numpy as np

from ._checks import check_square, check_stack
from .kernels import pairwise as pairwise_kernels

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


def _refined(value: float, i: int, j: int, lo: float, hi: float) -> float:
    if not lo <= value <= hi:
        raise RuntimeError(
            f"pair ({i}, {j}): exact similarity {value!r} outside its screening interval [{lo!r}, {hi!r}]."
        )
    return value


def _reduce_screened(
    approx: np.ndarray,
    bound: np.ndarray,
    refine: Callable[[int, int], float],
    threshold: float | None,
    goal: int,
) -> np.ndarray:
    """The ``exact`` variant on screened similarities: the same keep-set as on the exact matrix, refining lazily.

    Pairs are walked by upper end ``hi = approx + bound`` (ties by ``(i, j)``). A pair met while both its slices
    are kept is refined (its exact value ``v``, which must lie in ``[approx - bound, hi]``) and waits in a heap
    keyed by ``(-v, i, j)``; a refined pair is acted on only when its key precedes the next unrefined ``hi``, so
    it is the next pair of the exact order among all pairs not yet visited, and pairs are acted on in exactly the
    exact variant's order. Kept slices are only ever dropped, so a pair skipped because a slice is gone would also
    have been skipped at its turn in the exact walk. Pairs with ``hi`` below the threshold are never similar and
    never looked at. A pair whose lower end exceeds the upper end of every other pair still in play (the best
    refined one and the next unrefined one with both slices kept) and clears the threshold is next in the exact
    order without being refined.
    """
    n = len(approx)
    upper = approx + bound
    ii, jj = _sorted_pairs(upper, threshold)  # by upper end, pairs whose upper end is under the threshold left out
    hi, lo = upper[ii, jj].tolist(), (approx - bound)[ii, jj].tolist()
    ii, jj = ii.tolist(), jj.tolist()
    kept = bytearray(b"\x01") * n
    remaining = n
    ready: list[tuple[float, int, int]] = []  # refined pairs: (-exact, i, j)
    p = 0
    q = 0  # scan position for the next pair after p whose slices are both kept (only ever moves forward)
    while p < len(ii) or ready:
        if ready and (p == len(ii) or ready[0] < (-hi[p], ii[p], jj[p])):
            neg, i, j = heapq.heappop(ready)
            if not (kept[i] and kept[j]):
                continue
            if threshold is not None and -neg < threshold:
                break  # every pair not yet acted on is at most this similar
        else:
            i, j = ii[p], jj[p]
            p += 1
            if not (kept[i] and kept[j]):
                continue
            q = max(q, p)
            while q < len(ii) and not (kept[ii[q]] and kept[jj[q]]):
                q += 1
            rival = max(-ready[0][0] if ready else -math.inf, hi[q] if q < len(ii) else -math.inf)
            if not (lo[p - 1] > rival and (threshold is None or lo[p - 1] >= threshold)):
                heapq.heappush(ready, (-_refined(refine(i, j), i, j, lo[p - 1], hi[p - 1]), i, j))
                continue
            # else: its lower end beats every other pair's upper end: next in the exact order, no value needed
        kept[j] = 0
        remaining -= 1
        if remaining <= goal:
            break
    return np.frombuffer(bytes(kept), dtype=np.uint8).astype(bool)


def reduce_pairs(
    similarity: np.ndarray,
    threshold: float | None = None,
    target_fraction: float | None = None,
    variant: str = "exact",
    bound: np.ndarray | None = None,
    refine: Callable[[int, int], float] | None = None,
) -> np.ndarray:
    """Boolean keep mask (N,) from an (N, N) similarity matrix (larger = more similar; see module docstring).

    Give ``threshold``, ``target_fraction`` or both (stop at whichever is reached first); neither raises
    ``ValueError``. Only the upper triangle is read. ``variant="released"`` needs a threshold and no target.

    Screened input: with ``bound`` ((N, N)) and ``refine(i, j)`` (the exact value of pair ``i < j``), where
    ``similarity - bound <= exact <= similarity + bound`` holds with both ends as computed in float64 (a bound with
    a little slack, as :func:`~medssl_monai.reduction.similarity.ssim_screen_bound` has), the result is the
    keep-set of the exact matrix, computed with exact values only where the bound leaves the order (exact variant,
    :func:`_reduce_screened`) or the threshold test (released variant, pairs of kept slices) open. A refined value
    outside its interval raises ``RuntimeError``.
    """
    sim = check_square(similarity)
    if (bound is None) != (refine is None):
        raise ValueError("give both bound and refine (screened similarities) or neither.")
    if bound is not None:
        bound = check_square(bound, "bound")
        if bound.shape != sim.shape:
            raise ValueError(f"bound must have the similarity's shape {sim.shape}, got {bound.shape}.")
        if (np.triu(bound, k=1) < 0).any():
            raise ValueError("bound must be non-negative (upper triangle).")
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
                similar = sim[i, i + 1 :] >= threshold
                if bound is not None:  # decide exactly where the bound straddles the threshold (kept slices only)
                    b = bound[i, i + 1 :]
                    for j in later[keep[i + 1 :] & (np.abs(sim[i, i + 1 :] - threshold) <= b)].tolist():
                        lo, hi = sim[i, j] - bound[i, j], sim[i, j] + bound[i, j]
                        similar[j - i - 1] = _refined(refine(i, j), i, j, lo, hi) >= threshold
                keep[later[keep[i + 1 :] & similar]] = False
        return keep
    goal = target_count(n, target_fraction) if target_fraction is not None else 1
    if n <= goal:
        return keep
    if bound is not None:
        return _reduce_screened(sim, bound, refine, threshold, goal)
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


def similarity_matrix(images: np.ndarray, method: str, encoder=None, device="cpu", threads: int = 1) -> np.ndarray:
    """(N, N) similarity, larger = more similar, for ``method`` in ``hash`` (``-Hamming``), ssim, mi, deep.
    ``threads``: numba threads of the hash / SSIM / NMI kernels (same values)."""
    from .deep import embed, pairwise_cosine
    from .hashing import dhash, pairwise_hamming
    from .similarity import pairwise_nmi, pairwise_ssim

    if method == "hash":
        return -pairwise_hamming(dhash(images, threads=threads)).astype(np.float64)
    if method == "ssim":
        return pairwise_ssim(images, threads=threads)
    if method == "mi":
        return pairwise_nmi(images, threads=threads)
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
    threads: int = 1,
) -> np.ndarray:
    """Keep mask (N,) for one volume of uint8 (N, H, W) slices with one of :data:`METHODS`.

    ``all`` keeps everything, ``every_n`` keeps 0, n, 2n, ...; the similarity methods reduce with
    :func:`reduce_pairs`. ``threshold`` is in the method's own units: Hamming distance for ``hash`` (similar
    when ``<= threshold``), SSIM / NMI / cosine for the others (similar when ``>= threshold``). With neither
    threshold nor target_fraction: :data:`DEFAULT_THRESHOLDS` where the paper gives one (HASH 6), otherwise the
    paper's 10 % target (:data:`DEFAULT_TARGET_FRACTION`). A one-slice volume returns ``[True]``. ``threads``:
    numba threads for the similarity kernels (the default 1 leaves volumes as the parallel unit; same result).

    SSIM with numba: the pairs are screened in float32 and only the pairs whose order the error bound leaves
    open are recomputed in float64 (:func:`~medssl_monai.reduction.similarity.screen_ssim`); the keep-set is
    that of the exact matrix :func:`~medssl_monai.reduction.pairwise_ssim`.
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
    if method == "ssim" and pairwise_kernels.use_numba():  # float32 screening + float64 refinement: the exact keep-set
        from .similarity import screen_ssim

        approx, bound, exact = screen_ssim(x, threads=threads)
        return reduce_pairs(approx, threshold, target_fraction, variant, bound=bound, refine=exact)
    sim = similarity_matrix(x, method, encoder=encoder, device=device, threads=threads)
    if method == "hash" and threshold is not None:
        threshold = -float(threshold)
    return reduce_pairs(sim, threshold=threshold, target_fraction=target_fraction, variant=variant)
