"""Small project-wide settings: where the shared data lives, where a bundle lives."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "bundle_root", "shared_data_dir"]

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
