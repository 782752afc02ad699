"""Shared fixtures. The real-data tier (``@pytest.mark.realdata``) reads ``$MEDSSL_DATA_DIR`` (default
``../shared/data``): skipped where that folder is absent, but a failure under CI (``CI=true``), which has it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from medssl_monai.utils import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
BUNDLE_3DSIAM = REPO / "bundles" / "3dsiam"


def bundle_workflow(configs: Path, name: str, **override) -> ConfigWorkflow:
    """The initialised workflow of ``configs/<name>.json`` (type ``train`` for ``train``, else ``infer``), no logging
    file, with ``override`` applied."""
    wf = ConfigWorkflow(
        config_file=str(configs / f"{name}.json"),
        workflow_type="train" if name == "train" else "infer",
        logging_file=False,
        **override,
    )
    wf.initialize()
    return wf


def spawn_gloo(worker, tmp_path: Path, world: int = 2, timeout: float = 120) -> None:
    """Run ``worker(rank, world, init_method, str(tmp_path))`` in ``world`` spawned processes that join a gloo group
    through a file in ``tmp_path``; each must exit 0."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    init = f"file://{tmp_path / 'rendezvous'}"
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    procs = [ctx.Process(target=worker, args=(rank, world, init, str(tmp_path))) for rank in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
        assert p.exitcode == 0


def missing(message: str) -> None:
    """A test tier's prerequisite is absent: skip it here, fail under CI (``CI=true``), which must have it."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not root.is_dir():
        missing(f"real data not found at {root} (set MEDSSL_DATA_DIR)")
    return root
