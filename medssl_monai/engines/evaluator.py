"""Evaluators: MONAI's, made tolerant of the failed cases a ReportingDataset hands on."""

from __future__ import annotations

from monai.engines import SupervisedEvaluator

__all__ = ["EmbeddingEvaluator"]


class EmbeddingEvaluator(SupervisedEvaluator):
    """:class:`monai.engines.SupervisedEvaluator` that runs the network on the good cases of each batch and skips a
    batch whose cases all failed to load (such a batch carries only ``errors``; see
    :func:`~medssl_monai.data.collate_reporting`). ``decollate`` defaults to False so that handlers see whole
    batches (:class:`~medssl_monai.engines.EmbeddingWriter`)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("decollate", False)
        super().__init__(*args, **kwargs)

    def _iteration(self, engine, batchdata):  # type: ignore[override]
        if isinstance(batchdata, dict) and "image" not in batchdata:
            engine.state.output = {}
            return engine.state.output
        return super()._iteration(engine, batchdata)
