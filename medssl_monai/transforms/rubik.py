"""Rubik's cube pretext task (Zhuang et al., MICCAI 2019): cut a volume into 2x2x2 cubes, shuffle and rotate them.

Zhuang, Li, Hu, Ma, Yang, Zheng, "Self-supervised feature learning for 3D medical images by playing a Rubik's cube",
MICCAI 2019 (the "Rubik's cube [25]" baseline of Li et al., MICCAI 2021, Table 1). The network sees the ``M = 8``
cubes in a permuted order, each possibly rotated by 180 degrees, and learns two tasks:

- cube ordering: which of ``K`` fixed permutations was applied (a K-way classification). The permutations are chosen
  from all ``8! = 40,320`` with a large minimum Hamming distance between them (:func:`hamming_permutations`, the
  greedy selection of Noroozi & Favaro, ECCV 2016, that Zhuang et al. follow);
- cube orientation: for every cube (in presented order) whether it was turned by 180 degrees "horizontally" or
  "vertically" (a ``2M``-dim multi-label target). Only 180-degree turns are used, so a cube's shape stays a cube and
  no turn is a no-op; here a cube is left as is, turned horizontally or turned vertically with probability 1/3 each.

Zhuang et al. leave a random gap between neighbouring cubes so that the network cannot solve the task from edge
continuity; here each cube is a random ``cube_size`` crop inside its octant, which leaves a random gap of up to
``2 * (octant - cube_size)`` voxels between neighbours.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from torch.nn import functional as F

__all__ = ["RubikCubed", "hamming_permutations", "rotate_cube"]

#: the axes flipped by each 180-degree turn of a (C, D, H, W) cube: "horizontal" turns about the first spatial axis
#: (flips H and W), "vertical" about the second (flips D and W).
_TURNS: tuple[tuple[int, int], ...] = ((2, 3), (1, 3))


def hamming_permutations(n_items: int = 8, n_permutations: int = 100, seed: int = 0) -> np.ndarray:
    """``n_permutations`` permutations of ``range(n_items)`` with a large minimum pairwise Hamming distance.

    Greedy max-min selection (Noroozi & Favaro, ECCV 2016, Algorithm 1): start from one random permutation, then
    repeatedly add the candidate whose smallest Hamming distance to the chosen ones is largest (ties: lowest index).
    The identity is not special. Deterministic under ``seed``. Returns an int64 array (n_permutations, n_items).
    """
    candidates = np.array(list(itertools.permutations(range(n_items))), dtype=np.int64)
    if not 1 <= n_permutations <= len(candidates):
        raise ValueError(f"n_permutations must be in [1, {len(candidates)}] for {n_items} items, got {n_permutations}.")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(candidates)))]
    nearest = (candidates != candidates[chosen[0]]).sum(1)
    for _ in range(n_permutations - 1):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, (candidates != candidates[pick]).sum(1))
    return candidates[chosen]


def rotate_cube(cube: torch.Tensor, turn: int) -> torch.Tensor:
    """Turn a (C, D, H, W) cube by 180 degrees: ``turn`` 0 none, 1 horizontal, 2 vertical (see ``_TURNS``)."""
    if turn == 0:
        return cube
    return torch.flip(cube, _TURNS[turn - 1])


class RubikCubed(Randomizable, MapTransform):
    """Make one Rubik's cube sample from a (C, S, S, S) image: permuted, rotated cubes and their targets.

    Writes ``cubes_key``: the ``M = 8`` cubes, each ``cube_size`` per axis (resized to ``resize_to`` when given),
    stacked along the channel axis in presented order, ``(8 * C, s, s, s)`` (so MONAI collation and
    ``channels_last_3d`` work; :class:`~medssl_monai.networks.RubikCubeNetwork` splits them again);
    ``permutation_key``: the index of the applied permutation in ``permutations`` (int64); ``rotation_key``: the
    ``(2 * 8,)`` float orientation target, ``[horizontal, vertical]`` for each presented cube.

    Presented cube ``j`` is octant ``permutations[index][j]`` of the image (octants in C order over (D, H, W)).

    Args:
        keys: the image key (one key).
        cube_size: edge of each cube, at most half the image edge; the crop's offset inside its octant is random
            (Zhuang et al.'s random gap). None: the full octant.
        resize_to: resize every cube to this edge (trilinear), e.g. to meet an encoder's minimum input; None keeps
            ``cube_size``.
        n_permutations: K, the number of permutation classes (Zhuang et al. use a fixed set of K; default 100).
        permutation_seed: seed of :func:`hamming_permutations` (the set is part of the model: keep it fixed).
    """

    def __init__(
        self,
        keys: KeysCollection,
        cube_size: int | None = None,
        resize_to: int | None = None,
        n_permutations: int = 100,
        permutation_seed: int = 0,
        cubes_key: str = "cubes",
        permutation_key: str = "permutation",
        rotation_key: str = "rotation",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"RubikCubed takes one image key, got {self.keys}.")
        self.cube_size = cube_size
        self.resize_to = resize_to
        self.permutations = hamming_permutations(8, n_permutations, permutation_seed)
        self.cubes_key, self.permutation_key, self.rotation_key = cubes_key, permutation_key, rotation_key
        self._index = 0
        self._turns = np.zeros(8, dtype=np.int64)
        self._offsets = np.zeros((8, 3), dtype=np.int64)

    def randomize(self, data: tuple[int, int]) -> None:
        octant, size = data
        self._index = int(self.R.randint(len(self.permutations)))
        self._turns = self.R.randint(0, 3, size=8)
        self._offsets = self.R.randint(0, octant - size + 1, size=(8, 3))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        key = self.keys[0]
        image = torch.as_tensor(d[key])
        if image.ndim != 4 or len(set(image.shape[1:])) != 1:
            raise ValueError(
                f"RubikCubed needs a cubic (C, S, S, S) image under {key!r}, got shape {tuple(image.shape)}; crop or "
                "resize it to a cube first."
            )
        octant = image.shape[1] // 2
        size = octant if self.cube_size is None else self.cube_size
        if not 1 <= size <= octant:
            raise ValueError(f"cube_size {size} must be in [1, {octant}] (half the image edge {image.shape[1]}).")
        self.randomize((octant, size))
        corners = list(itertools.product((0, octant), repeat=3))
        cubes = []
        for j, source in enumerate(self.permutations[self._index]):
            start = [c + int(o) for c, o in zip(corners[source], self._offsets[j])]
            cube = image[:, start[0] : start[0] + size, start[1] : start[1] + size, start[2] : start[2] + size]
            cubes.append(rotate_cube(cube, int(self._turns[j])))
        stacked = torch.cat(cubes, 0)
        if self.resize_to is not None and self.resize_to != size:
            stacked = F.interpolate(stacked[None].float(), size=(self.resize_to,) * 3, mode="trilinear")[0]
        rotation = torch.zeros(8, 2)
        for j, turn in enumerate(self._turns):
            if turn:
                rotation[j, int(turn) - 1] = 1.0
        d[self.cubes_key] = stacked.contiguous()
        d[self.permutation_key] = torch.tensor(self._index, dtype=torch.int64)
        d[self.rotation_key] = rotation.reshape(-1)
        return d
