"""Class composition of SE-selected batches (Li et al., MICCAI 2021, Supplementary Table 3).

The paper samples 2,000 batches from BraTS and reports the L-grade : H-grade ratio of the samples SE selects, for
k = 2..5 (data 1:3.29; SE with k = 3 gives 1:2.19). Labels serve the report only, never the selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from .strategies import select

__all__ = ["batch_ratio_diagnostic"]


def batch_ratio_diagnostic(
    features: np.ndarray,
    labels: Sequence[int],
    ks: Sequence[int] = (2, 3, 4, 5),
    q: int = 10,
    m: int = 6,
    n_batches: int = 2000,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Minority : majority ratio of random batches of m samples against SE batches (candidates N = k * q).

    For each k, ``n_batches`` candidate batches of N distinct samples are drawn uniformly (one generator seeded with
    ``seed``); SE keeps m of each (k-means seed = ``seed + batch index``). Without SE, the first m samples of the same
    candidate batch form the batch (a uniform random batch of m). The minority and majority classes are those of
    the whole dataset; ratios are ``minority count / majority count`` over all selected samples.

    Returns ``{"classes": {label: count}, "minority", "majority", "data_ratio", "rows": [{"k", "N", "m",
    "random_ratio", "se_ratio", "random_minority_share", "se_minority_share"}, ...]}``.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features (N, D) and labels (N,) must align, got {features.shape} and {labels.shape}.")
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise ValueError("the diagnostic needs at least two classes in labels.")
    minority, majority = values[np.argmin(counts)], values[np.argmax(counts)]
    rng = np.random.default_rng(seed)
    rows = []
    for k in ks:
        n = k * q
        if n > len(labels):
            raise ValueError(f"k={k}, q={q}: a candidate batch of {n} exceeds the {len(labels)} samples.")
        random_counts = {minority: 0, majority: 0}
        se_counts = {minority: 0, majority: 0}
        for b in tqdm(range(n_batches), desc=f"SE diagnostic k={k}", disable=not progress, leave=False):
            candidates = rng.choice(len(labels), size=n, replace=False)
            picked = candidates[select(features[candidates], k=k, m=m, seed=seed + b)]
            for target, idx in ((random_counts, candidates[:m]), (se_counts, picked)):
                for c in (minority, majority):
                    target[c] += int((labels[idx] == c).sum())
        total = n_batches * m
        rows.append(
            {
                "k": int(k),
                "N": int(n),
                "m": int(m),
                "random_ratio": random_counts[minority] / max(random_counts[majority], 1),
                "se_ratio": se_counts[minority] / max(se_counts[majority], 1),
                "random_minority_share": random_counts[minority] / total,
                "se_minority_share": se_counts[minority] / total,
            }
        )
    return {
        "classes": {int(v): int(c) for v, c in zip(values, counts)},
        "minority": int(minority),
        "majority": int(majority),
        "data_ratio": float(counts.min() / counts.max()),
        "n_batches": int(n_batches),
        "rows": rows,
    }
