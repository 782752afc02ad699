"""A tqdm progress bar per epoch (Ignite's) with a MONAI-style ``attach``."""

from __future__ import annotations

from ignite.engine import Engine

__all__ = ["ProgressBar"]


class ProgressBar:
    """A tqdm progress bar per epoch showing ``output_key`` (the loss; None: no value), Ignite's ``ProgressBar``
    with a MONAI-style ``attach(engine)``."""

    def __init__(self, output_key: str | None = "loss", persist: bool = True) -> None:
        self.output_key = output_key
        self.persist = persist

    def _transform(self, output: dict) -> dict[str, float]:
        return {self.output_key: float(output[self.output_key])}

    def attach(self, engine: Engine) -> None:
        from ignite.handlers import ProgressBar as IgniteProgressBar

        transform = self._transform if self.output_key else None
        IgniteProgressBar(persist=self.persist).attach(engine, output_transform=transform)
