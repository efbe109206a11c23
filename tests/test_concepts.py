"""The concept-vector rules, checked against brute-force computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL

from fiftyone_inficond.clip import encode_concepts, load_clip
from fiftyone_inficond.concepts import ConceptExtractor
from fiftyone_inficond.corpus import make_corpus
from fiftyone_inficond.dense import dense_patch_embeddings, patch_grid
from fiftyone_inficond.segments import segment_patches


@pytest.fixture(scope="module")
def clip(tiny_checkpoint):
    return load_clip(TINY_MODEL, tiny_checkpoint, device="cpu")


def test_dense_features_are_attention_restricted_to_each_patch_itself(clip):
    """The value path equals the last block's attention when every patch may attend only to itself."""
    visual = clip.model.visual
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    x = visual._embeds(images)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    x = x[:, 1:]
    last = visual.transformer.resblocks[-1]
    n = x.shape[1]
    only_self = ~torch.eye(n, dtype=torch.bool)  # True = may not attend
    attended = last.attn(last.ln_1(x), last.ln_1(x), last.ln_1(x), attn_mask=only_self, need_weights=False)[0]
    expected = visual.ln_post(attended) @ visual.proj
    with torch.no_grad():
        dense = dense_patch_embeddings(clip.model, images)
    assert dense.shape == (2, n, clip.model.visual.proj.shape[1])
    assert torch.allclose(dense, expected, atol=1e-5)


def test_segments_group_neighbouring_similar_patches():
    grid = (6, 6)
    left, right = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    features = torch.stack([left if c < 3 else right for r in range(6) for c in range(6)])[None]
    assignment = segment_patches(features, grid, n_segments=4).reshape(grid)
    left_ids, right_ids = set(assignment[:, :3].flatten().tolist()), set(assignment[:, 3:].flatten().tolist())
    assert not left_ids & right_ids


def _brute_force(patches, maps, concepts):
    """Per image: mean-then-normalize each segment, cosine to each concept, max, clip at 0."""
    vectors = np.zeros((len(patches), len(concepts)))
    for i, (image_patches, segment_map) in enumerate(zip(patches, maps)):
        best = np.full(len(concepts), -np.inf)
        for segment in np.unique(segment_map):
            mean = image_patches[segment_map.flatten() == segment].mean(axis=0)
            mean /= np.linalg.norm(mean)
            for c, concept in enumerate(concepts):
                best[c] = max(best[c], float(mean @ concept))
        vectors[i] = np.maximum(best, 0)
    return vectors


def test_concept_vector_is_max_over_segments_of_positive_similarity(clip):
    corpus = make_corpus(["wheel", "window", "sky", "grass", "water", "road", "red", "striped"])
    concepts = encode_concepts(clip, corpus)
    extractor = ConceptExtractor(clip.model, concepts, n_segments=9)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    batch = extractor(images)

    with torch.no_grad():
        patches = F.normalize(dense_patch_embeddings(clip.model, images), dim=-1).numpy()
    expected = _brute_force(patches.astype(np.float64), batch.segment_maps, concepts.numpy().astype(np.float64))
    assert batch.vectors.shape == (3, len(corpus))
    assert batch.vectors.dtype == np.float32
    np.testing.assert_allclose(batch.vectors, expected, atol=1e-5)
    assert (batch.vectors >= 0).all()

    for i in range(3):
        n_used = len(np.unique(batch.segment_maps[i]))
        assert batch.segment_maps[i].shape == patch_grid(clip.model)
        assert sorted(np.unique(batch.segment_maps[i])) == list(range(n_used))
        assert len(batch.segment_concepts[i]) == len(batch.segment_similarities[i]) == n_used
        # The vector's entry for each segment's label is at least that segment's similarity.
        for concept, similarity in zip(batch.segment_concepts[i], batch.segment_similarities[i]):
            assert batch.vectors[i, concept] >= max(similarity, 0) - 1e-4


def test_global_embedding_from_the_shared_trunk_is_encode_image(clip):
    from fiftyone_inficond.dense import global_and_dense_embeddings

    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        pooled, dense = global_and_dense_embeddings(clip.model, images)
        assert torch.allclose(pooled, clip.model.encode_image(images), atol=1e-5)
        assert torch.allclose(dense, dense_patch_embeddings(clip.model, images), atol=1e-6)
