"""RE (sample re-weighting) and SE (sample selection) from k-means on features (Li et al., MICCAI 2021, Sec. 2).

Notation of the paper: a batch of N samples, features clustered into k clusters with frequencies f_j.

* RE: a sample in cluster j gets the weight N / f_j, "re-scaled to guarantee the minimum weight is 1", i.e.
  ``w_i = max_j f_j / f_{c(i)}`` over the non-empty clusters. Cluster sizes (6, 3, 1) give weights (1, 2, 6).
* SE: with centroids c_1..c_k, take the pair (a, b) with the largest Euclidean distance and the m/2 samples
  nearest to each of them; the paper sets m < N / k (N = k * q, q = 10, m = 6).

k-means is scikit-learn's ``KMeans`` (k-means++ seeding, ``n_init=10`` restarts, ``random_state=seed``), so both
are deterministic under a seed.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

__all__ = ["cluster", "reweight", "select"]

Features = np.ndarray | torch.Tensor


def _as_numpy(features: Features, k: int) -> np.ndarray:
    x = features.detach().float().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(x.shape)}.")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    if x.shape[0] < k:
        raise ValueError(f"cannot form k={k} clusters from a batch of {x.shape[0]} samples.")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or Inf (has the encoder diverged?).")
    return x.astype(np.float64, copy=False)


def cluster(features: Features, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the (N, D) features: ``(assignments (N,), centroids (k, D))``.

    Several identical points (a collapsed encoder) can leave fewer than k distinct clusters; scikit-learn then warns
    and some clusters stay empty, which RE and SE both tolerate.
    """
    x = _as_numpy(features, k)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    return km.labels_.astype(np.int64), km.cluster_centers_


def _like(result: np.ndarray, features: Features) -> np.ndarray | torch.Tensor:
    if isinstance(features, torch.Tensor):
        return torch.as_tensor(result, device=features.device)
    return result


def reweight(features: Features, k: int = 3, seed: int = 0) -> np.ndarray | torch.Tensor:
    """RE weights of the N samples: ``N / f_j`` for a sample in cluster j, divided by the smallest, so min = 1.

    Returns float32 weights, a numpy array for numpy input or a tensor on the features' device for tensor input.
    """
    assignments, _ = cluster(features, k, seed)
    sizes = np.bincount(assignments, minlength=k).astype(np.float64)
    n = float(len(assignments))
    raw = n / sizes[assignments]  # N / f_j
    return _like((raw / raw.min()).astype(np.float32), features)


def select(features: Features, k: int = 3, m: int = 6, seed: int = 0) -> np.ndarray | torch.Tensor:
    """SE: indices of the m samples nearest to the two centroids farthest apart (ceil(m/2) for the first, floor(m/2)
    for the second).

    The pair is ``argmax_{i<j} ||c_i - c_j||`` (first pair on ties). Samples are taken nearest-first for centroid a,
    then nearest-first for b among those not yet taken, so the m indices are distinct. The paper asks for m < N / k;
    a larger m is refused. Returns int64 indices (numpy, or a tensor on the features' device).
    """
    x = _as_numpy(features, k)
    n = x.shape[0]
    if k < 2:
        raise ValueError("SE needs k >= 2 clusters (it picks the two centroids farthest apart).")
    if not 1 <= m < n / k:
        raise ValueError(f"SE needs 1 <= m < N/k (Li et al. Sec. 2); got m={m}, N={n}, k={k}: raise q or lower m.")
    _, centroids = cluster(x, k, seed)
    dist = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
    a, b = np.unravel_index(np.argmax(np.triu(dist, 1)), dist.shape)
    chosen: list[int] = []
    for centre, count in ((a, (m + 1) // 2), (b, m // 2)):
        order = np.argsort(np.linalg.norm(x - centroids[centre], axis=1), kind="stable")
        chosen.extend([i for i in order if i not in chosen][:count])
    return _like(np.asarray(chosen, dtype=np.int64), features)
