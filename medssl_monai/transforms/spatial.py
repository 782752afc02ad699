"""Random affine with the shift given as a fraction of the image size (Li et al., MICCAI 2021, Sec. 3)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.data import MetaTensor
from monai.transforms import RandAffined
from monai.utils import ensure_tuple_rep

__all__ = ["RandAffineFractiond"]


class RandAffineFractiond(RandAffined):
    """:class:`monai.transforms.RandAffined` whose translation range is a fraction of each sample's spatial size.

    3DSiam shifts by a random amount "between [-0.05, 0.05]" of the size (Sec. 3); MONAI's ``translate_range`` is in
    voxels, which would tie one config to one volume size. Here ``translate_fraction=0.05`` becomes
    ``translate_range = 0.05 * size`` voxels for each sample, so the same config serves 28^3, 64^3 and 96^3 inputs.
    All other arguments are :class:`~monai.transforms.RandAffined`'s.
    """

    def __init__(self, keys, translate_fraction: Sequence[float] | float = 0.05, **kwargs) -> None:
        if "translate_range" in kwargs:
            raise ValueError("RandAffineFractiond takes translate_fraction instead of translate_range.")
        super().__init__(keys, **kwargs)
        self.translate_fraction = translate_fraction

    def __call__(self, data: Mapping[Hashable, object], lazy: bool | None = None) -> dict:
        first_key = self.first_key(dict(data))
        if first_key != ():
            item = data[first_key]
            size = item.peek_pending_shape() if isinstance(item, MetaTensor) else item.shape[1:]
            fractions = ensure_tuple_rep(self.translate_fraction, len(size))
            self.rand_affine.rand_affine_grid.translate_range = tuple(float(f) * s for f, s in zip(fractions, size))
        return super().__call__(data, lazy=lazy)
