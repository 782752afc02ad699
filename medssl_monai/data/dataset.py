"""A dataset for batch jobs that must finish the good cases and report the bad ones."""

from __future__ import annotations

from collections.abc import Sequence

from monai.data import Dataset, list_data_collate

__all__ = ["ReportingDataset", "collate_reporting", "root_cause"]


def root_cause(err: BaseException) -> str:
    """The message of the error a transform raised, unwrapped from MONAI's ``applying transform ...`` RuntimeErrors."""
    while err.__cause__ is not None and isinstance(err, RuntimeError) and str(err).startswith("applying transform"):
        err = err.__cause__
    return f"{type(err).__name__}: {err}"


class ReportingDataset(Dataset):
    """:class:`monai.data.Dataset` that turns a case whose transforms fail into ``{"id", "error"}`` instead of
    stopping the job. Use it with :func:`collate_reporting` for embedding export and other batch jobs."""

    def _transform(self, index: int):
        try:
            return super()._transform(index)
        except Exception as err:  # noqa: BLE001 - any failing case is reported; the job goes on
            item = self.data[index]
            case = item.get("id", str(index)) if isinstance(item, dict) else str(index)
            return {"id": case, "error": root_cause(err)}


def collate_reporting(batch: Sequence[dict]) -> dict:
    """Collate the good items with MONAI's ``list_data_collate``; list the failed ones under ``errors``.

    A batch whose cases all failed has only ``errors`` (no ``image``); engines skip it.
    """
    good = [b for b in batch if "error" not in b]
    out = list_data_collate(good) if good else {}
    out["errors"] = [(b["id"], b["error"]) for b in batch if "error" in b]
    return out
