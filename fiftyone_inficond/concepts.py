"""Concept vectors of images: per concept, the best cosine similarity over the image's segments."""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_inficond.dense import dense_patch_embeddings, patch_grid
from fiftyone_inficond.segments import segment_embeddings, segment_patches


@dataclass
class ConceptBatch:
    """Concept extraction results for a batch of images (numpy, on the CPU).

    Attributes:
        vectors: ``(batch, n_concepts)`` float32 concept vectors, negatives set to 0
        segment_maps: ``(batch, rows, cols)`` uint8 segment index of every patch, numbered
            ``0..n_used-1`` per image
        segment_concepts: per image, the corpus column of each segment's nearest concept
        segment_similarities: per image, each segment's cosine similarity to that concept
        segment_embeddings: per image, ``(n_used, embed_dim)`` float16 unit embeddings of its
            segments, so any concept (also one added later) can be located without the images
    """

    vectors: np.ndarray
    segment_maps: np.ndarray
    segment_concepts: list
    segment_similarities: list
    segment_embeddings: list


def concept_map(segment_map, segment_concepts):
    """What the App draws: each patch's segment's nearest concept, as corpus column + 1 (0 is
    never drawn), named by the field's mask targets.

    Args:
        segment_map: ``(rows, cols)`` segment index of every patch
        segment_concepts: ``(n_used,)`` corpus column of each segment's nearest concept

    Returns:
        ``(rows, cols)`` uint16
    """
    return (np.asarray(segment_concepts, dtype=np.uint16) + 1)[segment_map]


def concept_vectors(similarities, used):
    """Max similarity over the used segments, per concept, with negatives set to 0.

    Args:
        similarities: ``(batch, n_segments, n_concepts)`` cosine similarities
        used: ``(batch, n_segments)`` bool mask of segments that exist
    """
    masked = similarities.masked_fill(~used[..., None], float("-inf"))
    return masked.amax(dim=1).clamp(min=0)


def _compact_ids(assignment, used):
    """Renumbers each image's used segment ids to ``0..n_used-1`` in their original order."""
    new_ids = used.long().cumsum(dim=1) - 1
    return new_ids.gather(1, assignment)


def image_segments(model, images, grid, n_segments, spatial_weight, n_ids=None):
    """Segments of preprocessed images: dense patch embeddings, grouped.

    Args:
        model: an open_clip model with a ViT image tower (or the tower itself)
        images: ``(batch, 3, height, width)`` preprocessed images
        grid, n_segments, spatial_weight: see :func:`fiftyone_inficond.segments.segment_patches`
        n_ids: how many segment ids to keep room for: by default as many as the batch uses; a
            traced module passes :func:`fiftyone_inficond.segments.seed_count` (no
            data-dependent shape), which changes no concept vector (unused ids are masked)

    Returns:
        ``(batch, n_ids, dim)`` unit segment embeddings, the ``(batch, n_ids)`` mask of used ids
        and the ``(batch, rows * cols)`` segment id of every patch
    """
    patches = F.normalize(dense_patch_embeddings(model, images).float(), dim=-1)
    assignment = segment_patches(patches, grid, n_segments, spatial_weight)
    n_ids = int(assignment.max()) + 1 if n_ids is None else n_ids
    segments, used = segment_embeddings(patches, assignment, n_ids)
    return segments, used, assignment


class ConceptExtractor:
    """Computes concept vectors and segment maps from preprocessed image batches.

    Args:
        model: an open_clip CLIP model with a ViT image tower
        concept_embeddings: ``(n_concepts, embed_dim)`` unit text embeddings, corpus order
        n_segments: about how many segments per image
        spatial_weight: how strongly segments stick to neighbouring patches
    """

    def __init__(self, model, concept_embeddings, n_segments=16, spatial_weight=1.0):
        self.model = model
        self.grid = patch_grid(model)
        self.concept_embeddings = concept_embeddings
        self.n_segments = n_segments
        self.spatial_weight = spatial_weight

    @torch.no_grad()
    def __call__(self, images):
        segments, used, assignment = image_segments(self.model, images, self.grid, self.n_segments, self.spatial_weight)
        similarities = segments @ self.concept_embeddings.T
        vectors = concept_vectors(similarities, used)
        best_similarity, best_concept = similarities.max(dim=-1)
        return self._to_batch(vectors, assignment, used, best_concept, best_similarity, segments)

    def _to_batch(self, vectors, assignment, used, best_concept, best_similarity, segments):
        maps = _compact_ids(assignment, used).reshape(-1, *self.grid)
        used, best_concept, best_similarity, segments = (
            t.cpu().numpy() for t in (used, best_concept, best_similarity, segments.half())
        )
        return ConceptBatch(
            vectors=vectors.cpu().numpy().astype(np.float32),
            segment_maps=maps.cpu().numpy().astype(np.uint8),
            segment_concepts=[c[u].tolist() for c, u in zip(best_concept, used)],
            segment_similarities=[s[u].astype(np.float64).round(4).tolist() for s, u in zip(best_similarity, used)],
            segment_embeddings=[e[u] for e, u in zip(segments, used)],
        )
