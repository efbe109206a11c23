"""Training the world CLIP: a small open_clip model whose dense patch features name world concepts.

Three losses, all on the model's own paths:

- CLIP's contrastive loss between images and captions (30% of captions are partial: one to
  three concept words), so the global embedding stays a CLIP embedding;
- a patch loss on the value-path patch embeddings (the very features concept extraction
  uses): each patch's cosine with every concept prompt's text embedding, scaled and shifted
  by a learnt temperature and bias (as SigLIP), against the fraction of the patch that the
  concept covers (per-pixel region, colour and texture masks), with a per-concept sigmoid
  loss: every concept is a positive or a negative for every patch, and a part smaller than a
  patch still raises its concept there;
- an image-level presence loss: per concept, the best patch's logit against whether the
  concept is in the image, as the concept vector reads it.

The world's masks make this supervision exact; the fidelity report measures the result on a
fresh seed. Run ``python -m fiftyone_inficond.world.clip_training`` (the Makefile's
``world-clip`` target: under 30 minutes on 2 CPU cores); the float16 checkpoint loads through
the normal path, ``load_clip(WORLD_MODEL, WORLD_CHECKPOINT)``.
"""

import argparse
import importlib.resources
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from fiftyone_inficond.clip import encode_text_tokens, load_clip
from fiftyone_inficond.corpus import DEFAULT_TEMPLATE, packaged_corpus
from fiftyone_inficond.dense import global_and_dense_embeddings, patch_grid
from fiftyone_inficond.students.training import TensorBatches
from fiftyone_inficond.world.scenes import generate_scenes
from fiftyone_inficond.world.vocabulary import CONCEPTS

WORLD_MODEL = "inficond-world-vit"
WORLD_CHECKPOINT = str(importlib.resources.files("fiftyone_inficond") / "data" / "inficond-world-vit.pt")
PARTIAL_CAPTIONS = 0.3

logger = logging.getLogger(__name__)


def patch_fractions(masks, grid, n_values):
    """Per patch of a ``grid``, the fraction of its pixels holding each mask value.

    Args:
        masks: ``(H, W)`` integer masks with values in ``[0, n_values)``, summed over
        grid: ``(rows, cols)``, dividing ``H`` and ``W``
        n_values: how many values there are

    Returns:
        ``(rows * cols, n_values)`` float32, row-major patches
    """
    rows, cols = grid
    h, w = masks[0].shape
    patch_of_pixel = (np.arange(h)[:, None] // (h // rows)) * cols + np.arange(w)[None, :] // (w // cols)
    counts = sum(
        np.bincount((patch_of_pixel * n_values + mask).ravel(), minlength=rows * cols * n_values)
        for mask in masks
    )
    return (counts.reshape(rows * cols, n_values) / ((h // rows) * (w // cols))).astype(np.float32)


def _partial_caption(rng, concepts):
    words = rng.choice(concepts, size=min(len(concepts), rng.integers(1, 4)), replace=False)
    return DEFAULT_TEMPLATE.format(" and ".join(words))


def _scene_chunk(args):
    count, seed = args
    return generate_scenes(count, seed=seed)


def make_training_data(clip, n, seed, workers=2):
    """Tensors for training: images, caption tokens, per-patch concept fractions and per-image
    concept presence (both in world-corpus order)."""
    chunks = [(n // workers + (i < n % workers), seed * 1000 + i) for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        scenes = [scene for chunk in pool.map(_scene_chunk, chunks) for scene in chunk]
    rng = np.random.default_rng(seed)
    grid = patch_grid(clip.model)
    captions = [
        _partial_caption(rng, s.concepts) if rng.random() < PARTIAL_CAPTIONS else s.caption for s in scenes
    ]
    fractions = [
        patch_fractions((s.region_mask, s.colour_mask, s.texture_mask), grid, len(CONCEPTS) + 1)[:, 1:]
        for s in scenes
    ]
    return (
        torch.stack([clip.preprocess(s.image) for s in scenes]),
        clip.tokenizer(captions),
        torch.as_tensor(np.stack(fractions), dtype=torch.float16),
        torch.as_tensor([[c in s.concepts for c in CONCEPTS] for s in scenes], dtype=torch.float16),
    )


class WorldClipModule(pl.LightningModule):
    """The open_clip model, its three losses and its optimizer."""

    def __init__(self, model, concept_tokens, lr=1e-3, max_steps=2000):
        super().__init__()
        self.model = model
        self.register_buffer("concept_tokens", concept_tokens)
        # SigLIP's initial temperature and bias: every patch starts negative for every concept
        self.dense_log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.dense_bias = nn.Parameter(torch.tensor(-10.0))
        self.lr = lr
        self.max_steps = max_steps

    def training_step(self, batch, batch_index):
        images, captions, fractions, presence = batch
        image, patches = global_and_dense_embeddings(self.model, images)
        image, patches = F.normalize(image, dim=-1), F.normalize(patches, dim=-1)
        text = F.normalize(encode_text_tokens(self.model, captions), dim=-1)
        logits = self.model.logit_scale.exp() * image @ text.T
        targets = torch.arange(len(images), device=images.device)
        clip_loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2

        concepts = F.normalize(encode_text_tokens(self.model, self.concept_tokens), dim=-1)
        patch_logits = self.dense_log_scale.exp() * patches @ concepts.T + self.dense_bias  # (batch, patches, concepts)
        patch_loss = F.binary_cross_entropy_with_logits(
            patch_logits, fractions.float(), reduction="none"
        ).sum(-1).mean()
        presence_loss = F.binary_cross_entropy_with_logits(
            patch_logits.amax(dim=1), presence.float(), reduction="none"
        ).sum(-1).mean()
        if self.global_step % 100 == 0:
            logger.info(
                "step %d: clip %.3f, patch %.3f, presence %.3f",
                self.global_step, clip_loss.item(), patch_loss.item(), presence_loss.item(),
            )
        return clip_loss + patch_loss + presence_loss

    def configure_optimizers(self):
        dense = [self.dense_log_scale, self.dense_bias]
        optimizer = torch.optim.AdamW(
            [{"params": self.model.parameters()}, {"params": dense, "weight_decay": 0.0}],
            lr=self.lr,
            weight_decay=0.05,
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.lr, total_steps=self.max_steps, pct_start=0.05)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def train_world_clip(out, n_scenes=10000, minutes=27, steps=1650, batch_size=128, seed=0):
    """Trains the world CLIP for at most ``minutes`` and saves a float16 checkpoint to ``out``."""
    torch.manual_seed(seed)
    clip = load_clip(WORLD_MODEL, device="cpu")
    started = time.time()
    data = make_training_data(clip, n_scenes, seed)
    logger.info("generated %d scenes in %.0f s", n_scenes, time.time() - started)
    corpus = packaged_corpus("world")
    tokens = clip.tokenizer([DEFAULT_TEMPLATE.format(p) for p in corpus.prompts])
    module = WorldClipModule(clip.model.train(), tokens, max_steps=steps)
    trainer = pl.Trainer(
        max_steps=steps,
        max_time={"minutes": minutes},
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.fit(module, DataLoader(TensorBatches(*data, batch_size=batch_size, seed=seed), batch_size=None))
    state = {k: v.half() if v.is_floating_point() else v for k, v in clip.model.state_dict().items()}
    torch.save(state, out)
    logger.info("trained %d steps in %.0f s; saved %s", trainer.global_step, time.time() - started, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=WORLD_CHECKPOINT)
    parser.add_argument("--scenes", type=int, default=10000)
    parser.add_argument("--minutes", type=float, default=27, help="a time limit on training")
    parser.add_argument("--steps", type=int, default=1650)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train_world_clip(args.out, args.scenes, args.minutes, args.steps)


if __name__ == "__main__":
    main()
