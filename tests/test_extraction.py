"""Concept extraction over real coco128 images on the real database."""

import shutil

import fiftyone as fo
import numpy as np
import pytest
from conftest import TINY_MODEL, assert_nothing_written, run_python

from fiftyone_inficond.corpus import load_corpus, make_corpus
from fiftyone_inficond.extraction import compute_concepts

CORPUS = ["person", "dog", "car", "sky", "grass", "wood", "red", "striped", "brewery-outdoor"]


def _compute(samples, checkpoint, **kwargs):
    kwargs.setdefault("corpus", CORPUS)
    return compute_concepts(samples, model=TINY_MODEL, pretrained=checkpoint, batch_size=5, **kwargs)


def test_vectors_follow_the_corpus_and_the_run_is_recorded(coco_subset, tiny_checkpoint):
    result = _compute(coco_subset, tiny_checkpoint)
    assert (result.computed, result.already_done, result.failed) == (12, 0, {})

    corpus = make_corpus(CORPUS)
    vectors = np.stack(coco_subset.values("concepts"))
    assert vectors.shape == (12, len(corpus)) and vectors.dtype == np.float32
    assert (vectors >= 0).all() and (vectors > 0).any()

    info = coco_subset._dataset.get_run_info("concepts").config
    assert info.concepts == list(corpus.names)
    assert (info.corpus_id, info.model, info.pretrained) == (corpus.id, TINY_MODEL, tiny_checkpoint)
    assert info.grid == [8, 8]

    targets = coco_subset._dataset.mask_targets["concepts_segments"]
    scheme = coco_subset._dataset.app_config.color_scheme  # each concept its own colour in the App
    (colours,) = [f["maskTargetsColors"] for f in scheme.fields if f["path"] == "concepts_segments"]
    assert scheme.color_by == "value" and [c["intTarget"] for c in colours] == sorted(targets)
    assert len({c["color"] for c in colours}) == len(colours)
    for vector, segments in zip(vectors, coco_subset.values("concepts_segments")):
        assert segments.segment_map.shape == segments.mask.shape == (8, 8)
        assert len(segments.concepts) == len(segments.similarities) == segments.segment_map.max() + 1
        # The App names each patch by its segment's nearest concept.
        named = [[targets[int(v)] for v in row] for row in segments.mask]
        assert named == [[corpus.names[segments.concepts[s]] for s in row] for row in segments.segment_map]
        for concept, similarity in zip(segments.concepts, segments.similarities):
            assert vector[concept] >= max(similarity, 0) - 1e-4
    # Samples outside the view are untouched.
    assert coco_subset._dataset.exists("concepts").count() == 12


def test_rerun_computes_nothing_twice(coco_subset, tiny_checkpoint):
    _compute(coco_subset, tiny_checkpoint)
    before = dict(zip(*coco_subset.values(["id", "concepts"])))

    again = _compute(coco_subset, tiny_checkpoint)
    assert (again.computed, again.already_done) == (0, 12)

    dropped = coco_subset.limit(4)
    dropped.set_field("concepts", None).save()
    resumed = _compute(coco_subset, tiny_checkpoint)
    assert (resumed.computed, resumed.already_done) == (4, 8)
    after = dict(zip(*coco_subset.values(["id", "concepts"])))
    for sample_id, vector in before.items():
        np.testing.assert_allclose(after[sample_id], vector, atol=1e-6)


def test_another_run_in_the_same_field_needs_overwrite(coco_subset, tiny_checkpoint):
    _compute(coco_subset, tiny_checkpoint)
    with pytest.raises(ValueError, match="already holds concepts of another run.*overwrite=True"):
        _compute(coco_subset, tiny_checkpoint, corpus=["cat"])
    assert coco_subset._dataset.get_run_info("concepts").config.concepts == list(make_corpus(CORPUS).names)

    result = _compute(coco_subset, tiny_checkpoint, corpus=["cat"], overwrite=True)
    assert result.computed == 12
    assert np.stack(coco_subset.values("concepts")).shape == (12, 1)


def test_field_holding_other_data_is_never_overwritten(coco_subset, tiny_checkpoint):
    with pytest.raises(ValueError, match="'ground_truth' holds data that is not concepts"):
        _compute(coco_subset, tiny_checkpoint, field="ground_truth", overwrite=True)
    assert coco_subset.count("ground_truth.classifications") > 0


def test_unreadable_images_are_reported_and_skipped(coco128, tiny_checkpoint, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    truncated = tmp_path / "truncated.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    source = coco128.first().filepath
    truncated.write_bytes(open(source, "rb").read()[:300])
    shutil.copy(source, tmp_path / "fine.jpg")
    coco128.add_samples(
        [fo.Sample(filepath=str(p)) for p in (corrupt, truncated, tmp_path / "missing.jpg", tmp_path / "fine.jpg")]
    )
    view = coco128.match({"filepath": {"$regex": str(tmp_path)}})
    result = _compute(view, tiny_checkpoint)

    bad = set(view.match({"filepath": {"$regex": "corrupt|truncated|missing"}}).values("id"))
    assert set(result.failed) == bad
    assert result.computed == 1
    assert view.exists("concepts").values("filepath") == [str(tmp_path / "fine.jpg")]


def test_empty_view_writes_nothing(coco128, tiny_checkpoint):
    with pytest.raises(ValueError, match="The view is empty"):
        _compute(coco128.limit(0), tiny_checkpoint)
    assert_nothing_written(coco128, "concepts")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(model="ViT-Nope"), ValueError, "Unknown open_clip model 'ViT-Nope'"),
        (dict(pretrained="/nowhere/weights.pt"), FileNotFoundError, "not found"),
        (dict(corpus=["", " "]), ValueError, "corpus is empty"),
        (dict(n_segments=300), ValueError, "n_segments\\) must be a whole number from 1 to 255; got 300"),
    ],
)
def test_bad_inputs_write_nothing(coco_subset, tiny_checkpoint, kwargs, error, message):
    arguments = {**dict(model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=CORPUS), **kwargs}
    with pytest.raises(error, match=message):
        compute_concepts(coco_subset, **arguments)
    assert_nothing_written(coco_subset._dataset, "concepts")


def test_not_a_checkpoint_writes_nothing(coco_subset, tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="is not a checkpoint of open_clip model"):
        compute_concepts(coco_subset, model=TINY_MODEL, pretrained=str(path), corpus=CORPUS)
    assert_nothing_written(coco_subset._dataset, "concepts")


def test_results_reload_in_another_process(coco_subset, tiny_checkpoint):
    coco_subset._dataset.persistent = True
    _compute(coco_subset, tiny_checkpoint)
    expected = np.stack(coco_subset.values("concepts"))
    out = run_python(
        "import fiftyone as fo, numpy as np\n"
        f"ds = fo.load_dataset('{coco_subset._dataset.name}')\n"
        "v = np.stack(ds.exists('concepts').values('concepts'))\n"
        "print(v.shape, ds.get_run_info('concepts').config.corpus_id)\n"
        "print(repr(v.tolist()))\n"
    )
    shape_line, values_line = out.strip().splitlines()[-2:]
    assert shape_line == f"(12, {len(CORPUS)}) {make_corpus(CORPUS).id}"
    np.testing.assert_allclose(np.array(eval(values_line)), expected, atol=1e-7)


def test_default_corpus_is_broden(coco_subset, tiny_checkpoint):
    compute_concepts(coco_subset.limit(2), model=TINY_MODEL, pretrained=tiny_checkpoint)
    assert np.stack(coco_subset.limit(2).values("concepts")).shape == (2, len(load_corpus()))
