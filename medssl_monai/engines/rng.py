"""Every random stream a training run draws from, as one checkpointable object, so that a resumed run continues the
same streams as an unbroken one (bit-identical weights on CPU).

The streams: PyTorch's global CPU generator (data-loader shuffling, dropout, random masks; worker seeds), CUDA's when
present, NumPy's and Python's global generators, and the private ``numpy.random.RandomState`` (``R``) of every MONAI
``Randomizable`` transform and every ``torch.Generator`` reachable from the given roots (the trainer: its data
loader and its handlers' loaders; a data loader, a dataset, a transform): with
``num_workers=0`` augmentation draws from those, and they advance from epoch to epoch. With worker processes MONAI
re-seeds the workers' transforms from the PyTorch generator at each epoch, which the global state covers.

States are stored as tensors and plain Python values, so checkpoints still load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable

__all__ = ["RandomStates", "find_random_sources", "find_randomizables"]


_SKIP_TYPES: tuple[type, ...] = (str, bytes, int, float, bool, torch.Tensor, np.ndarray, torch.nn.Module)


def _skip(obj: Any) -> bool:
    """Objects that hold no random stream of the data pipeline (and may be large): networks, optimisers, schedulers,
    checkpoint machinery."""
    if isinstance(obj, (*_SKIP_TYPES, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)):
        return True
    name = type(obj).__name__
    return name in ("Checkpoint", "CheckpointSaver", "CheckpointLoader", "ResumableCheckpoint", "RandomStates")


def find_random_sources(roots: Iterable[Any]) -> tuple[list[Randomizable], list[torch.Generator]]:
    """The ``Randomizable`` transforms and the ``torch.Generator`` objects reachable from ``roots``, each once, in a
    deterministic depth-first order. From an Ignite engine: its data loader and the objects whose methods are its event
    handlers (a handler's own loader, e.g. :class:`~medssl_monai.engines.PreciseBatchNorm`'s shuffled batches); from a
    loader: its dataset and generator; from a dataset or transform: its attributes, lists, tuples and dicts
    (``Compose.transforms``, wrappers' inner transforms)."""
    from ignite.engine import Engine

    transforms: list[Randomizable] = []
    generators: list[torch.Generator] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if obj is None or depth > 12 or id(obj) in seen or _skip(obj):
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Generator):
            generators.append(obj)
            return
        if isinstance(obj, Randomizable):
            transforms.append(obj)
        if isinstance(obj, Engine):
            visit(getattr(obj, "data_loader", None), depth + 1)
            for handlers in obj._event_handlers.values():
                for func, *_ in handlers:
                    func = getattr(func, "__wrapped__", func)  # Ignite wraps handlers of filtered events
                    visit(getattr(func, "__self__", func), depth + 1)  # a bound method's object, or a callable object
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item, depth + 1)
        elif isinstance(obj, torch.utils.data.DataLoader):
            visit(obj.dataset, depth + 1)
            visit(obj.generator, depth + 1)
        elif hasattr(obj, "__dict__") and (isinstance(obj, torch.utils.data.Dataset) or callable(obj)):
            for name, item in vars(obj).items():
                datalist = name == "data" and isinstance(item, (list, tuple))
                if not datalist and name not in ("_cache", "_hash_keys"):  # datalists and caches hold no transforms
                    visit(item, depth + 1)

    for root in roots:
        visit(root, 0)
    return transforms, generators


def find_randomizables(roots: Iterable[Any]) -> list[Randomizable]:
    """The ``Randomizable`` transforms of :func:`find_random_sources`."""
    return find_random_sources(roots)[0]


def _np_state(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}  # fmt: skip


def _np_tuple(state: dict) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["pos"], state["has_gauss"], state["cached"])


class RandomStates:
    """``state_dict()`` / ``load_state_dict()`` of the global generators and of the transforms under ``roots``
    (see the module docstring). Pass it among a checkpoint's objects."""

    def __init__(self, roots: Iterable[Any] = ()) -> None:
        self.roots = list(roots)

    def state_dict(self) -> dict:
        transforms, generators = find_random_sources(self.roots)
        state = {
            "torch": torch.get_rng_state(),
            "numpy": _np_state(np.random.get_state()),
            "python": random.getstate(),
            "transforms": [_np_state(t.R.get_state()) for t in transforms],
            "generators": [g.get_state() for g in generators],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        np.random.set_state(_np_tuple(state["numpy"]))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        transforms, generators = find_random_sources(self.roots)
        stored = state.get("generators", [])
        if len(transforms) != len(state["transforms"]) or len(generators) != len(stored):
            raise ValueError(
                f"the checkpoint holds the random states of {len(state['transforms'])} transforms and {len(stored)} "
                f"generators, this run has {len(transforms)} and {len(generators)}: the data pipeline changed, so the "
                "run cannot resume exactly. Resume with the same settings, or start a new run in another --output_dir."
            )
        for t, s in zip(transforms, state["transforms"]):
            t.R.set_state(_np_tuple(s))
        for g, s in zip(generators, stored):
            g.set_state(s)
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
