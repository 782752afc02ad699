"""The training step of Zhao & Yang (MICCAI 2021, Sec. 2.2, 3.2): radiomics-deep feature correspondence with two memory
banks (CMC, Tian et al., ECCV 2020).

Per iteration, for a batch of sample indices ``i``:

1. ``{"deep": d, "radiomics": r} = network(image, radiomics)`` (both L2-normalised);
2. negatives: ``K`` other indices per sample from the banks (:meth:`MemoryBank.sample_negatives`; the paper's bank
   holds the whole training set, default ``K = 2048`` or all ``N - 1`` others when fewer);
3. ``loss = L^{d,r} + L^{r,d}`` (:class:`~medssl_monai.losses.RadiomicsDeepNCELoss`, Eq. 1-2, tau 0.07), candidates
   from the *other* view's bank;
4. backward and optimiser step (SGD, lr 3e-3 in the paper);
5. bank update with momentum 0.5: ``v_i <- normalise(0.5 v_i + 0.5 e_i)`` for each view, with the embeddings of this
   step (after the loss, as CMC does).
"""

from __future__ import annotations

import torch
from monai.engines.utils import IterationEvents

from ...engines.fit import FitTrainer
from ...losses.base import gather
from ...networks.memory_bank import MemoryBank

__all__ = ["RadiomicsDeepTrainer"]


class RadiomicsDeepTrainer(FitTrainer):
    """:class:`~medssl_monai.engines.FitTrainer` whose loss hook is the memory-bank step above (bank update in
    :meth:`after_step`, so a skipped non-finite step updates no bank).

    The batch holds ``image_key`` (the deep view's input), ``radiomics_key`` (raw radiomics features; the network
    standardises them) and ``index_key`` (each sample's row in the banks, ``0 .. N-1``). ``loss_function`` is a
    :class:`~medssl_monai.losses.RadiomicsDeepNCELoss`. ``engine.state.output`` holds ``loss``, the two directions
    ``loss_deep_anchor`` (``L^{d,r}``) and ``loss_radiomics_anchor`` (``L^{r,d}``), and ``embedding`` (the deep view,
    detached) for :class:`~medssl_monai.engines.EmbeddingHealth`.

    Args:
        bank_deep, bank_radiomics: one :class:`~medssl_monai.networks.MemoryBank` per view, ``N`` entries each.
        num_negatives: ``K`` (2048 by default; all other samples when ``N - 1 <= K``).
        seed: seed of the negatives' draw (a generator of this engine, so runs repeat).
        kwargs: :class:`~medssl_monai.engines.FitTrainer` arguments (``nonfinite``, ``autocast_dtype``,
            ``clip_grad_norm`` ...) and MONAI's ``SupervisedTrainer`` ones.
    """

    def __init__(
        self,
        *args,
        bank_deep: MemoryBank,
        bank_radiomics: MemoryBank,
        num_negatives: int = 2048,
        image_key: str = "image",
        radiomics_key: str = "radiomics",
        index_key: str = "index",
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if bank_deep.memory.shape != bank_radiomics.memory.shape:
            raise ValueError(
                f"the two banks must have one shape, got {tuple(bank_deep.memory.shape)} and "
                f"{tuple(bank_radiomics.memory.shape)}."
            )
        self.bank_deep = bank_deep.to(self.state.device)
        self.bank_radiomics = bank_radiomics.to(self.state.device)
        self.num_negatives = int(num_negatives)
        self.image_key, self.radiomics_key, self.index_key = image_key, radiomics_key, index_key
        self.generator = torch.Generator().manual_seed(int(seed))

    def compute_loss(self, engine: RadiomicsDeepTrainer, batchdata: dict) -> tuple[torch.Tensor, dict]:
        missing = [k for k in (self.image_key, self.radiomics_key, self.index_key) if k not in batchdata]
        if missing:
            raise KeyError(f"RadiomicsDeepTrainer: batch has no {missing} (keys: {list(batchdata)}).")
        image = self.to_device(batchdata[self.image_key]).float()
        radiomics = self.to_device(batchdata[self.radiomics_key]).float()
        index = self.to_device(batchdata[self.index_key]).long().reshape(-1)
        negatives = self.bank_deep.sample_negatives(index.cpu(), self.num_negatives, self.generator).to(index.device)
        with self.autocast():
            out = engine.network(image, radiomics)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        deep, rad = out["deep"].float(), out["radiomics"].float()
        deep_anchor, rad_anchor = engine.loss_function.directions(
            deep, rad, self.bank_deep.memory, self.bank_radiomics.memory, index, negatives
        )
        outputs = {
            "embedding": deep.detach(),
            "loss_deep_anchor": deep_anchor.detach(),
            "loss_radiomics_anchor": rad_anchor.detach(),
            "_deep": deep,
            "_radiomics": rad,
            "_index": index,
        }
        return deep_anchor + rad_anchor, outputs

    def loss_terms(self, engine: RadiomicsDeepTrainer, outputs: dict) -> dict[str, torch.Tensor]:
        return {
            "loss_deep_anchor": outputs["loss_deep_anchor"],
            "loss_radiomics_anchor": outputs["loss_radiomics_anchor"],
        }

    def after_step(self, engine: RadiomicsDeepTrainer, batchdata: dict, outputs: dict) -> None:
        """Move the banks' entries of the batch towards its embeddings. Under DDP every rank gathers all ranks' indices
        and embeddings first (as MoCo gathers its keys), so every rank's banks stay identical and equal to those of
        one process on the global batch (an index on two ranks, as padding makes, is updated once with the mean)."""
        index = gather(outputs["_index"])
        self.bank_deep.update(index, gather(outputs["_deep"].detach()))
        self.bank_radiomics.update(index, gather(outputs["_radiomics"].detach()))
