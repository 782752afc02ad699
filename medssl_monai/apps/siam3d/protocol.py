"""The whole Table 1 protocol of Li et al. (MICCAI 2021) as one Python entry point: pre-train each variant, embed
every case, extract PyRadiomics features, evaluate the feature tables (``evaluate.json`` calls :func:`run_table1`
once; the pre-trainings and embeddings are the bundle's own ``train.json`` / ``inference.json`` workflows)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["pretrain_and_embed", "run_table1"]

logger = logging.getLogger(__name__)


def pretrain_and_embed(
    variants: Mapping[str, Mapping[str, Any]],
    train_config: str | os.PathLike,
    inference_config: str | os.PathLike,
    pretrain_dir: str | os.PathLike,
    overrides: Mapping[str, Any],
    train_overrides: Mapping[str, Any] | None = None,
    logging_file: str | os.PathLike | None = None,
    skip: Sequence[str] = (),
) -> dict[str, str]:
    """For each variant (name -> ``train.json`` overrides; ``config_files`` lists configs merged over ``train.json``,
    e.g. ``rubik.json``), pre-train into ``<pretrain_dir>/<name>`` and embed every case with ``inference.json``.

    ``overrides`` (data settings) go to both workflows, ``train_overrides`` (e.g. ``autocast_dtype``) to training
    only; a variant's own settings win. Pre-training resumes from the variant's checkpoints (re-running a finished
    protocol re-trains nothing). Names in ``skip`` are left out. Returns name -> ``embeddings.csv``.
    """
    from monai.bundle import run

    unknown = set(skip) - set(variants)
    if unknown:
        raise ValueError(f"skip names {sorted(unknown)} are not variants ({sorted(variants)}).")
    tables = {}
    for name, spec in variants.items():
        if name in skip:
            logger.info("Variant %r skipped.", name)
            continue
        spec = dict(spec)
        configs = [str(train_config), *map(str, spec.pop("config_files", []))]
        out = Path(pretrain_dir) / name
        logger.info("Pre-training variant %r into %s.", name, out)
        run(
            config_file=configs if len(configs) > 1 else configs[0],
            logging_file=logging_file,
            output_dir=str(out),
            **{**overrides, **(train_overrides or {}), **spec},
        )
        run(
            config_file=str(inference_config),
            logging_file=logging_file,
            ckpt=str(out / "models" / "model.pt"),
            output_dir=str(out),
            **overrides,
        )
        tables[name] = str(out / "embeddings.csv")
    return tables


def run_table1(
    evaluate: Callable[..., list[dict]],
    radiomics: Callable[[], str | os.PathLike],
    density: Mapping[str, str] | None = None,
    **pretrain: Any,
) -> list[dict]:
    """Pre-train and embed (:func:`pretrain_and_embed` with ``pretrain``), run ``radiomics()`` (which writes the
    radiomics CSV and returns its path, as :func:`~medssl_monai.radiomics.extract_to_csv` does), then ``evaluate(tables=..., density=...)`` (a partial of
    :func:`~medssl_monai.apps.siam3d.evaluate_feature_tables`) on the tables there are: rows and density curves of
    skipped variants are left out. Returns the protocol's records."""
    tables = pretrain_and_embed(**pretrain)
    tables = {"radiomics": str(radiomics()), **tables}
    curves = {curve: table for curve, table in (density or {}).items() if table in tables}
    return evaluate(tables=tables, density=curves)
