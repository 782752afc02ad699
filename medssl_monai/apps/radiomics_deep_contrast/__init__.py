"""Radiomics-deep contrast (Zhao & Yang, MICCAI 2021), the radiomics_deep_contrast bundle's pipeline: the memory-bank
training step and the evaluation (Tables 1-2, Fig. 2). The network and the loss are library parts
(:mod:`medssl_monai.networks`, :mod:`medssl_monai.losses`)."""

from .evaluate import (
    PAPER_FREEZE,
    FineTuneClassifier,
    RadiomicsPipeline,
    add_weighted_f1,
    embed,
    evaluate_radiomics_deep,
    export_embeddings,
    plot_label_efficiency,
    tables_markdown,
)
from .trainer import RadiomicsDeepTrainer

__all__ = [
    "PAPER_FREEZE",
    "FineTuneClassifier",
    "RadiomicsDeepTrainer",
    "RadiomicsPipeline",
    "add_weighted_f1",
    "embed",
    "evaluate_radiomics_deep",
    "export_embeddings",
    "plot_label_efficiency",
    "tables_markdown",
]
