"""Concepts added to a run from its stored segment embeddings, and phrase search over the corpus."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_MODEL, unique_name

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.errors import InficondError, RunInputsChanged
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.new_concepts import add_concepts, search_concepts
from fiftyone_inficond.students.registry import extend_students, load_students, train_students

CORPUS = ["person", "dog", "car", "sky", "grass", "wood", "red", "striped"]
ADDED = ["propeller", "cloud", "brick wall"]


def _extract(samples, checkpoint, corpus, **kwargs):
    return compute_concepts(samples, model=TINY_MODEL, pretrained=checkpoint, corpus=corpus, batch_size=16, **kwargs)


def test_an_added_concept_equals_a_full_extraction_with_the_extended_corpus(coco128, tiny_checkpoint):
    view = coco128.limit(16)
    reference = coco128.clone(unique_name())
    _extract(view, tiny_checkpoint, CORPUS)
    try:
        _extract(reference.limit(16), tiny_checkpoint, CORPUS + ADDED)
        result = add_concepts(coco128, ADDED)
        assert result == {"added": ADDED, "concepts": len(CORPUS) + len(ADDED), "samples": 16}
        added = np.stack(view.values("concepts"))
        full = np.stack(reference.limit(16).values("concepts"))
        assert added.shape == full.shape == (16, len(CORPUS) + len(ADDED))
        np.testing.assert_array_equal(added[:, : len(CORPUS)], full[:, : len(CORPUS)])
        np.testing.assert_allclose(added[:, len(CORPUS):], full[:, len(CORPUS):], atol=3e-3)  # float16 segments
        mine, theirs = view.values("concepts_segments"), reference.limit(16).values("concepts_segments")
        agree = np.mean([a == b for m, t in zip(mine, theirs) for a, b in zip(m.concepts, t.concepts)])
        assert agree > 0.95  # the best concept per segment, up to float16 near-ties
        # The App's concept map and its names follow: a segment the new concept won is named by it.
        assert coco128.mask_targets["concepts_segments"][len(CORPUS) + 1] == ADDED[0]
        for segments in mine:
            np.testing.assert_array_equal(segments.mask, np.asarray(segments.concepts)[segments.segment_map] + 1)
        config = coco128.get_run_info("concepts").config
        assert config.concepts == CORPUS + ADDED and config.complete is True

        # Extraction resumes with the extended corpus: new samples get every column.
        more = _extract(coco128.limit(20), tiny_checkpoint, CORPUS + ADDED)
        assert (more.computed, more.already_done) == (4, 16)
        assert {len(v) for v in coco128.limit(20).values("concepts")} == {len(CORPUS) + len(ADDED)}
    finally:
        reference.delete()


def test_a_student_run_trained_before_an_addition_loads_and_tunes_unchanged(distilled):
    run = train_students(distilled, key="before", epochs=1, budget=None)
    add_concepts(distilled, ["propeller"])
    loaded = load_students(distilled, "before")
    assert loaded.concepts == run.concepts and loaded.performance() == run.performance()
    assert loaded.weight.tobytes() == run.weight.tobytes()
    assert loaded.tune(up={"person": ["sky"]}, epochs=1)["revision"] == 1
    after = train_students(distilled, key="after", epochs=1, budget=None)
    assert after.concepts == run.concepts + ["propeller"]


def test_extending_a_run_trains_a_new_run_with_the_added_concepts_and_keeps_every_bound(distilled):
    distilled.take(80, seed=0).tag_samples("train")
    run = train_students(distilled, key="s", train_tag="train", epochs=2, budget=None)  # any may be 👎'd
    with pytest.raises(InficondError, match="already uses every concept of 'concepts': add concepts first"):
        extend_students(distilled, "s")
    run.tune(down={"person": ["sky"]}, up={"dog": ["grass"]}, epochs=1)
    add_concepts(distilled, ["propeller"])

    extended = extend_students(distilled, "s", user="ana")
    assert extended.key == "s_extended" and extended.concepts == run.concepts + ["propeller"]
    assert sorted(extended.ids) == sorted(run.ids) and (extended.data.train == run.data.train).all()
    person, dog = extended.classes.index("person"), extended.classes.index("dog")
    sky, grass = extended.concepts.index("sky"), extended.concepts.index("grass")
    assert extended.state.upper[person, sky] == run.state.upper[person, sky] < np.inf
    assert extended.state.lower[dog, grass] == run.state.lower[dog, grass] > -np.inf
    assert extended.weight[person, sky] <= run.state.upper[person, sky]
    assert extended.weight[dog, grass] >= run.state.lower[dog, grass]
    assert np.isinf(extended.state.lower[:, -1]).all() and np.isinf(extended.state.upper[:, -1]).all()
    (first,) = extended.history
    assert first["kind"] == "train" and first["user"] == "ana"
    assert first["extends"] == {"key": "s", "revision": 1, "added": ["propeller"]}
    assert len(load_students(distilled, "s").history) == 2  # the old run as it was


def test_a_killed_addition_is_refused_until_the_same_addition_finishes_it(coco128, tiny_checkpoint):
    view = coco128.limit(12)
    _extract(view, tiny_checkpoint, CORPUS)
    coco128.persistent = True
    code = ("import fiftyone as fo\nfrom fiftyone_inficond.new_concepts import add_concepts\n"
            f"add_concepts(fo.load_dataset('{coco128.name}'), ['propeller'])\n")
    env = {**os.environ, "INFICOND_CRASHPOINT": "add:run-extending"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == -9, done.stderr
    with pytest.raises(InficondError, match="not fully written"):
        train_students(coco128, key="s", epochs=1, budget=None, teacher_field="concepts")
    with pytest.raises(InficondError, match=r"An earlier addition .* add exactly its concepts .*\(1: propeller\)"):
        add_concepts(coco128, ["cloud"])
    assert add_concepts(coco128, ["propeller"])["samples"] == 12
    assert {len(v) for v in view.values("concepts")} == {len(CORPUS) + 1}


@pytest.mark.parametrize(
    "names, message",
    [
        (["sky"], "Concept 'sky' is already in the corpus"),
        (["Sky "], "Concept 'Sky' is already in the corpus \\(as 'sky'\\)"),
        (["propeller", "propeller"], "Concept 'propeller' is already in the corpus"),
        ([" "], "A concept is a non-blank name"),
        (["x" * 10_000], "A concept is at most 100 characters; got one of 10,000"),
        ("propeller", "Give the concepts to add as a non-empty list"),
        ([], "Give the concepts to add as a non-empty list"),
        ([3], "A concept is a non-blank name or phrase; got 3"),
    ],
)
def test_bad_additions_write_nothing(coco128, tiny_checkpoint, names, message):
    view = coco128.limit(6)
    _extract(view, tiny_checkpoint, CORPUS)
    before = (fiftyone_api.stored_run_config(coco128, "concepts"), [v.tolist() for v in view.values("concepts")])
    with pytest.raises(InficondError, match=message):
        add_concepts(coco128, names)
    after = (fiftyone_api.stored_run_config(coco128, "concepts"), [v.tolist() for v in view.values("concepts")])
    assert after == before


def test_phrase_search_finds_the_nearest_corpus_concepts(coco128, tiny_checkpoint):
    _extract(coco128.limit(4), tiny_checkpoint, CORPUS)
    found = search_concepts(coco128, "  striped ", n=3)
    assert found[0] == {"concept": "striped", "similarity": pytest.approx(1.0, abs=1e-5)}
    assert len(found) == 3 and found[1]["similarity"] <= found[0]["similarity"]
    for phrase, message in [("", "non-blank"), ("w" * 5000, "at most 100 characters")]:
        with pytest.raises(InficondError, match=message):
            search_concepts(coco128, phrase)


def test_a_reordered_corpus_is_still_refused_after_additions_exist(distilled, tiny_checkpoint):
    train_students(distilled, key="s", epochs=1, budget=None)
    names = distilled.get_run_info("concepts").config.concepts
    compute_concepts(distilled, model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=names[1:] + names[:1],
                     overwrite=True)
    with pytest.raises(RunInputsChanged, match="concept corpus of 'concepts' changed"):
        load_students(distilled, "s")
