"""Concept text embeddings are encoded once per model and prompt and found by every client."""

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, run_python

from fiftyone_inficond import text_cache
from fiftyone_inficond.clip import encode_texts, load_clip
from fiftyone_inficond.corpus import make_corpus

CORPUS = make_corpus(["wing", "propeller", "cloud", "runway", "brewery-outdoor"])


def _forbid_encoding(monkeypatch):
    def fail(clip, texts):
        raise AssertionError(f"encoded again: {texts}")

    monkeypatch.setattr(text_cache, "encode_texts", fail)


def test_cached_embeddings_equal_encoding_and_are_encoded_once(tiny_checkpoint, monkeypatch):
    clip = load_clip(TINY_MODEL, tiny_checkpoint, device="cpu")
    template = f"a test photo {np.random.default_rng().integers(1 << 30)} of {{}}."  # cold for this test
    first = text_cache.concept_embeddings(clip, CORPUS, template)
    assert torch.allclose(first, encode_texts(clip, CORPUS.texts(template)), atol=1e-6)
    _forbid_encoding(monkeypatch)
    assert torch.equal(text_cache.concept_embeddings(clip, CORPUS, template), first)
    reordered = make_corpus(["runway", "wing"])
    assert torch.equal(text_cache.concept_embeddings(clip, reordered, template), first[[3, 0]])


def test_another_process_finds_them_and_other_weights_do_not(tiny_checkpoint):
    clip = load_clip(TINY_MODEL, tiny_checkpoint, device="cpu")
    template = f"another test photo {np.random.default_rng().integers(1 << 30)} of {{}}."
    expected = text_cache.concept_embeddings(clip, CORPUS, template)
    out = run_python(
        "from fiftyone_inficond import text_cache\n"
        "from fiftyone_inficond.clip import load_clip\n"
        "from fiftyone_inficond.corpus import make_corpus\n"
        "text_cache.encode_texts = None  # any encoding here would fail\n"
        f"clip = load_clip('{TINY_MODEL}', '{tiny_checkpoint}', device='cpu')\n"
        f"v = text_cache.concept_embeddings(clip, make_corpus({list(CORPUS.names)}), {template!r})\n"
        "print(v.numpy().tobytes().hex())\n"
    )
    assert out.strip().splitlines()[-1] == expected.numpy().tobytes().hex()
    random_init = load_clip(TINY_MODEL, device="cpu")
    assert text_cache.weights_id(random_init) != text_cache.weights_id(clip)
    assert not torch.allclose(text_cache.concept_embeddings(random_init, CORPUS, template), expected)


@pytest.mark.slow  # MongoDB
def test_a_concurrent_insert_of_the_same_embeddings_is_not_an_error():
    collection = text_cache.fiftyone_api.database()[text_cache.COLLECTION]
    docs = [{"_id": f"test-{np.random.default_rng().integers(1 << 60)}", "vector": b"\0" * 4}]
    text_cache._insert_new(collection, docs)
    text_cache._insert_new(collection, docs)  # another client won the race: fine
    assert collection.count_documents({"_id": docs[0]["_id"]}) == 1
    collection.delete_many({"_id": docs[0]["_id"]})
