"""View generators for SSL: several independently augmented copies of one sample."""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
from monai.transforms import Randomizable, Transform

__all__ = ["MultiViewd"]


class MultiViewd(Randomizable, Transform):
    """Apply one augmentation pipeline independently to copies of ``key``, producing ``view_keys``.

    MONAI's random dictionary transforms draw one set of parameters per call and apply it to all their keys, so
    augmenting ``CopyItemsd`` copies in one chain would give identical views. Here the pipeline is called once per
    view on a deep copy of the sample, so each view gets its own random draw (SimSiam / 3DSiam: "each image is
    randomly augmented into two images", Li et al. Sec. 2).

    Args:
        transform: the augmentation (a MONAI ``Compose`` of dictionary transforms acting on ``key``).
        key: the input key.
        view_keys: output keys, one per view (two for SimSiam).
        delete_source: drop ``key`` from the output (keeps batches small: only the views go to the trainer).
    """

    def __init__(
        self,
        transform: Callable[[dict], Mapping],
        key: str = "image",
        view_keys: Sequence[str] = ("view1", "view2"),
        delete_source: bool = True,
    ) -> None:
        if len(view_keys) < 1:
            raise ValueError("MultiViewd needs at least one view key.")
        self.transform = transform
        self.key = key
        self.view_keys = tuple(view_keys)
        self.delete_source = delete_source

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> MultiViewd:
        super().set_random_state(seed, state)
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:  # the views draw their own parameters inside ``transform``
        return None

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        if self.key not in d:
            raise KeyError(f"MultiViewd: key '{self.key}' not in the sample (keys: {list(d)}).")
        for view_key in self.view_keys:
            d[view_key] = self.transform({self.key: copy.deepcopy(d[self.key])})[self.key]
        if self.delete_source:
            d.pop(self.key)
        return d
