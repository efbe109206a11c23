"""Any concept of a run located on any image, from the segment embeddings stored with it."""

import numpy as np
import pytest
from conftest import TINY_MODEL

from fiftyone_inficond import locate, text_cache
from fiftyone_inficond.corpus import make_corpus
from fiftyone_inficond.errors import InficondError, UnknownName
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.runs import CONCEPTS_METHOD, record_run

CORPUS = ["person", "dog", "car", "sky", "grass", "wood", "red", "striped", "road", "water"]


@pytest.fixture
def located(coco128, tiny_checkpoint):
    view = coco128.limit(24)
    compute_concepts(view, model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=CORPUS, batch_size=12)
    return view


def _texts(dataset):
    return np.stack([locate.concept_text_embedding(dataset, name) for name in make_corpus(CORPUS).names])


def test_stored_segment_embeddings_reproduce_the_concept_vectors(located):
    texts = _texts(located)
    for vector, segments in zip(*located.values(["concepts", "concepts_segments"])):
        similarities = segments.embeddings.astype(np.float32) @ texts.T  # (segments, concepts)
        assert similarities.shape == (segments.segment_map.max() + 1, len(CORPUS))
        np.testing.assert_allclose(np.maximum(similarities.max(0), 0), vector, atol=3e-3)
        np.testing.assert_allclose(similarities.max(1), segments.similarities, atol=3e-3)


def test_top_patches_equal_a_brute_force_search(located):
    ids, segments = located.values(["id", "concepts_segments"])
    text = locate.concept_text_embedding(located, "sky")
    every = [(float(e.astype(np.float64) @ text), sample_id, s)
             for sample_id, seg in zip(ids, segments) for s, e in enumerate(seg.embeddings.astype(np.float32))]
    expected = sorted(every, key=lambda t: -t[0])[:10]
    found = locate.top_patches(located._dataset, "sky", n=10)
    assert [(p["sample_id"], p["segment"]) for p in found] == [(i, s) for _, i, s in expected]
    assert [p["similarity"] for p in found] == pytest.approx([v for v, _, _ in expected], abs=1e-5)
    for patch in found:
        mask = segments[ids.index(patch["sample_id"])].segment_map
        x, y, w, h = patch["box"]
        rows, cols = np.nonzero(mask == patch["segment"])
        assert (x, y) == (cols.min() / mask.shape[1], rows.min() / mask.shape[0]) and 0 < w <= 1 and 0 < h <= 1

    inside = located.limit(5)
    assert {p["sample_id"] for p in locate.top_patches(inside, "sky", n=50)} <= set(inside.values("id"))


def test_heatmaps_paint_each_patch_with_its_segments_similarity(located):
    j = CORPUS.index("grass")
    maps = locate.concept_heatmaps(located, "grass")
    text = locate.concept_text_embedding(located, "grass")
    for sample_id, vector, segments in zip(*located.values(["id", "concepts", "concepts_segments"])):
        result = maps[sample_id]
        per_segment = segments.embeddings.astype(np.float32) @ text
        np.testing.assert_allclose(result["map"], per_segment[segments.segment_map], atol=1e-5)
        assert result["similarity"] == pytest.approx(per_segment.max(), abs=1e-5)
        assert max(result["similarity"], 0) == pytest.approx(vector[j], abs=3e-3)


def test_the_index_is_read_once_and_again_when_extraction_adds_samples(located, tiny_checkpoint):
    first = locate.open_index(located)
    assert locate.open_index(located) is first and len(first.sample_ids) == 24
    compute_concepts(located._dataset.limit(30), model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=CORPUS)
    assert len(locate.open_index(located).sample_ids) == 30


def test_a_purged_text_cache_is_refilled_with_the_runs_model(located):
    expected = locate.concept_text_embedding(located, "road")
    config = located._dataset.get_run_info("concepts").config
    text_cache._collection().delete_many({"model": config.text_model, "text": "a photo of road."})
    np.testing.assert_allclose(locate.concept_text_embedding(located, "road"), expected, atol=1e-6)


def test_unknown_concepts_and_old_runs_are_explained(located, coco128):
    with pytest.raises(UnknownName, match="Concept 'moon' is not in the corpus of 'concepts'"):
        locate.top_patches(located, "moon")
    with pytest.raises(InficondError, match="The number of patches must be a whole number"):
        locate.top_patches(located, "sky", n=0)
    record_run(coco128, "old", CONCEPTS_METHOD, corpus_id="x", concepts=CORPUS)  # as before embeddings
    with pytest.raises(InficondError, match="computed by an older version.*overwrite=True"):
        locate.top_patches(coco128, "sky", field="old")
