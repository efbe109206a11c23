"""Training the world CLIP: a small open_clip model whose dense patch features name world concepts.

Two losses, both on the model's own paths:

- CLIP's contrastive loss between images and captions (30% of captions are partial: one to
  three concept words), so the global embedding stays a CLIP embedding;
- a patch loss on the value-path patch embeddings (the very features concept extraction
  uses): each patch's cosine logits against the concept prompts' text embeddings, trained
  with cross-entropy towards the patch's region concept (background, cloud, sun or part) and,
  on an object's main part, its colour and texture concepts. The world's per-pixel masks make this
  supervision exact; the fidelity report measures the result on a fresh seed.

Run ``python -m fiftyone_inficond.world.clip_training`` (the Makefile's ``world-clip``
target: about 15 minutes on 2 CPU cores); the float16 checkpoint loads through the normal
path, ``load_clip(WORLD_MODEL, WORLD_CHECKPOINT)``.
"""

import argparse
import importlib.resources
import logging
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.corpus import DEFAULT_TEMPLATE, packaged_corpus
from fiftyone_inficond.dense import global_and_dense_embeddings, patch_grid
from fiftyone_inficond.students.training import TensorBatches
from fiftyone_inficond.world.scenes import generate_scenes

WORLD_MODEL = "inficond-world-vit"
WORLD_CHECKPOINT = str(importlib.resources.files("fiftyone_inficond") / "data" / "inficond-world-vit.pt")
PARTIAL_CAPTIONS = 0.3

logger = logging.getLogger(__name__)


def patch_labels(mask, grid):
    """The most frequent value of ``mask`` in each patch of a ``grid``, flattened row-major."""
    rows, cols = grid
    h, w = mask.shape
    blocks = mask.reshape(rows, h // rows, cols, w // cols).transpose(0, 2, 1, 3).reshape(rows * cols, -1)
    counts = np.stack([np.bincount(block, minlength=int(mask.max()) + 1) for block in blocks])
    return counts.argmax(axis=1)


def _partial_caption(rng, concepts):
    words = rng.choice(concepts, size=min(len(concepts), rng.integers(1, 4)), replace=False)
    return DEFAULT_TEMPLATE.format(" and ".join(words))


def _scene_chunk(args):
    count, seed = args
    return generate_scenes(count, seed=seed)


def make_training_data(clip, n, seed, workers=2):
    """Tensors for training: images, caption tokens, patch region, colour and texture targets."""
    chunks = [(n // workers + (i < n % workers), seed * 1000 + i) for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        scenes = [scene for chunk in pool.map(_scene_chunk, chunks) for scene in chunk]
    rng = np.random.default_rng(seed)
    grid = patch_grid(clip.model)
    captions = [
        _partial_caption(rng, s.concepts) if rng.random() < PARTIAL_CAPTIONS else s.caption for s in scenes
    ]
    return (
        torch.stack([clip.preprocess(s.image) for s in scenes]),
        clip.tokenizer(captions),
        torch.as_tensor(np.stack([patch_labels(s.region_mask, grid) for s in scenes]) - 1),
        # 0 (off main parts) becomes -1, ignored by the loss
        torch.as_tensor(np.stack([patch_labels(s.colour_mask, grid) for s in scenes]) - 1),
        torch.as_tensor(np.stack([patch_labels(s.texture_mask, grid) for s in scenes]) - 1),
    )


class WorldClipModule(pl.LightningModule):
    """The open_clip model, its two losses and its optimizer."""

    def __init__(self, model, concept_tokens, lr=5e-4, max_steps=2000):
        super().__init__()
        self.model = model
        self.register_buffer("concept_tokens", concept_tokens)
        self.lr = lr
        self.max_steps = max_steps

    def training_step(self, batch, batch_index):
        images, captions, regions, colours, textures = batch
        scale = self.model.logit_scale.exp()
        image, patches = global_and_dense_embeddings(self.model, images)
        image, patches = F.normalize(image, dim=-1), F.normalize(patches, dim=-1)
        text = F.normalize(self.model.encode_text(captions), dim=-1)
        logits = scale * image @ text.T
        targets = torch.arange(len(images), device=images.device)
        clip_loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2

        concepts = F.normalize(self.model.encode_text(self.concept_tokens), dim=-1)
        patch_logits = scale * patches @ concepts.T  # (batch, patches, concepts)
        patch_logits = patch_logits.flatten(0, 1)
        region_loss = F.cross_entropy(patch_logits, regions.flatten())
        # -1 marks patches off objects' main parts, which have no colour or texture
        colour_loss = F.cross_entropy(patch_logits, colours.flatten(), ignore_index=-1)
        texture_loss = F.cross_entropy(patch_logits, textures.flatten(), ignore_index=-1)
        return clip_loss + region_loss + colour_loss + texture_loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.05)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.lr, total_steps=self.max_steps, pct_start=0.05)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def train_world_clip(out, n_scenes=6000, minutes=14, steps=700, batch_size=128, seed=0):
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
    parser.add_argument("--scenes", type=int, default=6000)
    parser.add_argument("--minutes", type=float, default=14, help="a time limit on training")
    parser.add_argument("--steps", type=int, default=700)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    train_world_clip(args.out, args.scenes, args.minutes, args.steps)


if __name__ == "__main__":
    main()
