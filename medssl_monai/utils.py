"""Small project-wide helpers: where the shared data lives, where a bundle lives, atomic file writes."""

from __future__ import annotations

import csv
import inspect
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "DATA_DIR_ENV",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_text",
    "bundle_root",
    "shared_data_dir",
]

#: The one setting that locates the shared real data (tests and benchmarks only).
DATA_DIR_ENV = "MEDSSL_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Folder of the shared real data: ``$MEDSSL_DATA_DIR``, default ``../shared/data`` beside the repository."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else (_REPO_ROOT.parent / "shared" / "data")


def bundle_root(name: str) -> str:
    """Root folder of the bundle whose config is being parsed.

    MONAI's ``ConfigWorkflow`` knows the config file (``config_root_path``) but does not expose it to the
    config itself. This looks for the workflow on the call stack (the config is parsed inside its methods)
    and returns the parent of its ``configs`` folder, so ``bundle_root`` follows the config file wherever the
    bundle is copied. Outside a workflow (a plain ``ConfigParser``) it falls back to ``bundles/<name>`` of
    this repository, then to the current directory.
    """
    from monai.bundle import ConfigWorkflow

    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, ConfigWorkflow):
                root = Path(candidate.config_root_path)
                return str((root.parent if root.name == "configs" else root).resolve())
            frame = frame.f_back
    finally:
        del frame
    fallback = _REPO_ROOT / "bundles" / name
    return str(fallback if fallback.is_dir() else Path.cwd())


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, then ``os.replace`` it into place: readers see the old file
    or the whole new one, never half of one. ``fsync`` flushes it to disk first (off for small cache entries whose
    loss after a power cut only costs a recomputation)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_csv(path: str | os.PathLike, header: Sequence, rows: Iterable[Sequence]) -> None:
    """:func:`atomic_write_text` of a CSV table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
