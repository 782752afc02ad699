"""One loss per file, each with its paper's formula and defaults in the docstring."""

from .negative_cosine import SimSiamLoss, negative_cosine_similarity

__all__ = ["SimSiamLoss", "negative_cosine_similarity"]
