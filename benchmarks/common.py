"""The world the concept benchmarks measure on, set up one way so their figures are comparable:
generated world scenes (seed 5) with their concepts extracted by the world CLIP through
``compute_concepts`` (real stored segment embeddings), deleted afterwards."""

import contextlib
import tempfile
import uuid

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL
from fiftyone_inficond.world.dataset import load_world


@contextlib.contextmanager
def world_with_concepts(n_images, corpus):
    """A throw-away dataset of ``n_images`` world scenes with ``corpus``'s concepts extracted."""
    with tempfile.TemporaryDirectory() as root:
        dataset = load_world(f"inficond-bench-{uuid.uuid4().hex[:8]}", root, n=n_images, seed=5)
        try:
            compute_concepts(dataset, load_clip(WORLD_MODEL, WORLD_CHECKPOINT), corpus=corpus,
                             batch_size=64, progress=False)
            yield dataset
        finally:
            dataset.delete()
