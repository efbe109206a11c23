"""Measuring concept extraction against the world's truth."""

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from fiftyone_inficond.runs import segments_field
from fiftyone_inficond.world.dataset import MASK_FIELDS
from fiftyone_inficond.world.vocabulary import CONCEPT_INDEX


def presence_auroc(vectors, present, concepts):
    """Per concept, the AUROC of its concept-vector column against its presence.

    Args:
        vectors: ``(n, n_concepts)`` concept vectors in ``concepts`` order
        present: per sample, the names of the concepts truly present
        concepts: the corpus's concept names

    Returns:
        ``{concept: auroc}`` for concepts both present and absent somewhere
    """
    truth = np.array([[c in names for c in concepts] for names in present])
    return {
        c: float(roc_auc_score(truth[:, j], vectors[:, j]))
        for j, c in enumerate(concepts)
        if 0 < truth[:, j].sum() < len(truth)
    }


def pixel_agreement(samples, field, concepts):
    """Fraction of pixels whose segment's label is one of the pixel's true concepts (its
    region, colour or texture).

    The concept map (on the patch grid) is scaled up to the image with nearest-neighbour
    sampling, as the App draws it.
    """
    corpus_to_world = np.array([0] + [CONCEPT_INDEX[c] + 1 for c in concepts])
    agree = total = 0
    for segments, *truths in zip(samples.values(segments_field(field)), *(samples.values(f) for f in MASK_FIELDS)):
        height, width = truths[0].mask.shape
        grid = Image.fromarray(segments.mask).resize((width, height), Image.NEAREST)
        labels = corpus_to_world[np.asarray(grid)]
        agree += int(np.logical_or.reduce([labels == truth.mask for truth in truths]).sum())
        total += height * width
    return agree / total
