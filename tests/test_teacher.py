"""Teacher scores from every source, on coco128 and its real YOLOX-Nano scores."""

import json
import os

import fiftyone as fo
import fiftyone.utils.torch as fout
import numpy as np
import pytest
import torchvision
from conftest import TINY_MODEL, assert_nothing_written, run_python

import fiftyone_inficond.teacher as teacher_module
from fiftyone_inficond.runs import delete_run
from fiftyone_inficond.teacher import (
    read_score_file,
    set_teacher_scores,
    teacher_from_clip,
    teacher_from_file,
    teacher_from_labels,
    teacher_from_model,
    teacher_scores,
    to_probabilities,
)


@pytest.fixture(scope="module")
def score_file(coco128_dir):
    return os.path.join(coco128_dir, "teacher_yolox_nano.json")


def test_score_file_lands_row_by_file_name(coco128, score_file):
    written = teacher_from_file(coco128, score_file)
    scores, classes, files = read_score_file(score_file)
    assert written == 128
    stored, stored_classes = teacher_scores(coco128)
    assert stored_classes == classes and len(classes) == 80
    by_name = dict(zip(files, np.asarray(scores, dtype=np.float32)))
    names = [os.path.basename(p) for p in coco128.values("filepath")]
    np.testing.assert_array_equal(stored, np.stack([by_name[n] for n in names]))
    assert coco128.get_run_info("teacher").config.scores_are == "probabilities"


def test_scores_reload_in_another_process(coco128, score_file):
    coco128.persistent = True
    teacher_from_file(coco128, score_file)
    out = run_python(
        "import fiftyone as fo\n"
        "from fiftyone_inficond.teacher import teacher_scores\n"
        f"scores, classes = teacher_scores(fo.load_dataset('{coco128.name}'))\n"
        "print(scores.shape, classes[0], round(float(scores.sum()), 3))\n"
    )
    assert out.strip().splitlines()[-1] == f"(128, 80) person {round(float(teacher_scores(coco128)[0].sum()), 3)}"


def test_subset_view_takes_only_its_rows(coco128, score_file):
    view = coco128.limit(10)
    assert teacher_from_file(view, score_file) == 10
    assert coco128.exists("teacher").count() == 10


@pytest.mark.parametrize("off", [1.0000001, -1e-9])
def test_a_probability_a_rounding_error_outside_zero_one_is_clipped_not_read_as_logits(off):
    scores = np.random.default_rng(0).uniform(0, 1, size=(630, 3)).astype(np.float32)
    scores[0, 0] = off
    probabilities, kind = to_probabilities(scores)
    assert kind == "probabilities" and probabilities.min() >= 0 and probabilities.max() <= 1
    assert (probabilities >= 0.5).sum() == (scores >= 0.5).sum()  # the positives as they were


def test_logits_are_detected_and_stored_as_probabilities(coco_subset):
    logits = np.random.default_rng(0).normal(0, 3, size=(12, 3))
    set_teacher_scores(coco_subset, logits, ["a", "b", "c"])
    stored, _ = teacher_scores(coco_subset)
    np.testing.assert_allclose(stored, 1 / (1 + np.exp(-logits)), rtol=1e-6)
    assert coco_subset._dataset.get_run_info("teacher").config.scores_are == "logits"


def test_rows_keyed_by_filepath_in_any_order(coco_subset):
    paths = coco_subset.values("filepath")[::-1]
    scores = np.linspace(0, 1, 24).reshape(12, 2)
    set_teacher_scores(coco_subset, scores, ["x", "y"], keys=paths, key_field="filepath")
    stored = dict(zip(coco_subset.values("filepath"), coco_subset.values("teacher")))
    for path, row in zip(paths, scores):
        np.testing.assert_allclose(stored[path], row, rtol=1e-6)


def test_scores_written_in_chunks_land_on_every_sample_once(coco_subset, monkeypatch):
    monkeypatch.setattr(teacher_module, "WRITE_ROWS", 5)  # 12 samples: chunks of 5, 5 and 2
    paths = coco_subset.values("filepath")[::-1]
    scores = np.linspace(0, 1, 36).reshape(12, 3)
    assert set_teacher_scores(coco_subset, scores, ["x", "y", "z"], keys=paths, key_field="filepath") == 12
    stored = dict(zip(coco_subset.values("filepath"), coco_subset.values("teacher")))
    np.testing.assert_allclose(np.stack([stored[p] for p in paths]), scores, rtol=1e-6)
    assert coco_subset._dataset.get_run_info("teacher").config.complete


def _bad(n_rows, n_classes, value=0.5):
    return np.full((n_rows, n_classes), value)


@pytest.mark.parametrize(
    "scores, classes, message",
    [
        (_bad(11, 2), ["a", "b"], "have 11 rows but 12 samples"),
        (_bad(12, 3), ["a", "b"], "have 3 columns but 2 classes"),
        (_bad(12, 2, np.nan), ["a", "b"], "NaN or infinite values"),
        (_bad(12, 2, np.inf), ["a", "b"], "NaN or infinite values"),
        (_bad(12, 2), ["a", "a"], "Duplicate class names"),
        (_bad(12, 0), [], "class list is empty"),
    ],
)
def test_bad_matrices_write_nothing(coco_subset, scores, classes, message):
    with pytest.raises(ValueError, match=message):
        set_teacher_scores(coco_subset, scores, classes)
    assert_nothing_written(coco_subset._dataset, "teacher")


def test_probabilities_out_of_range_are_refused(coco_subset):
    with pytest.raises(ValueError, match="outside \\[0, 1\\]: pass scores_are='logits'"):
        set_teacher_scores(coco_subset, _bad(12, 2, 3.0), ["a", "b"], scores_are="probabilities")
    assert_nothing_written(coco_subset._dataset, "teacher")


def test_score_file_of_other_images_writes_nothing(coco128, tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"classes": ["a"], "files": ["x.jpg", "y.jpg"], "scores": [[0.1], [0.2]]}))
    with pytest.raises(ValueError, match="None of the 2 teacher rows match a sample by filename"):
        teacher_from_file(coco128, str(path))
    assert_nothing_written(coco128, "teacher")


def test_empty_view_writes_nothing(coco128, score_file):
    with pytest.raises(ValueError, match="The view is empty"):
        teacher_from_file(coco128.limit(0), score_file)
    assert_nothing_written(coco128, "teacher")


def test_existing_teacher_needs_overwrite(coco_subset):
    set_teacher_scores(coco_subset, _bad(12, 2), ["a", "b"])
    with pytest.raises(ValueError, match="already holds teacher scores of another run"):
        set_teacher_scores(coco_subset, _bad(12, 3), ["a", "b", "c"])
    set_teacher_scores(coco_subset, _bad(12, 3), ["a", "b", "c"], overwrite=True)
    assert teacher_scores(coco_subset)[1] == ["a", "b", "c"]


def test_classifications_confidences(coco_subset):
    for sample in coco_subset:
        labels = [fo.Classification(label=c.label, confidence=0.9) for c in sample.ground_truth.classifications]
        sample["predictions"] = fo.Classifications(classifications=labels)
        sample.save()
    classes = coco_subset.distinct("ground_truth.classifications.label")
    teacher_from_labels(coco_subset, "predictions", classes=classes)
    scores, stored_classes = teacher_scores(coco_subset)
    assert stored_classes == classes
    for row, truth in zip(scores, coco_subset.values("ground_truth.classifications.label")):
        expected = np.array([0.9 if c in truth else 0.0 for c in classes], dtype=np.float32)
        np.testing.assert_allclose(row, expected)


def test_a_sample_without_a_prediction_gets_no_teacher_scores_not_confident_zeros(coco_subset):
    unlabelled = coco_subset.limit(3).values("id")
    for sample in coco_subset:
        labels = [fo.Classification(label=c.label, confidence=0.9) for c in sample.ground_truth.classifications]
        sample["predictions"] = fo.Classifications(classifications=labels)
        sample.save()
    for sample in coco_subset.select(unlabelled):  # the model predicted nothing for these
        sample["predictions"] = None
        sample.save()
    classes = coco_subset.distinct("ground_truth.classifications.label")
    written = teacher_from_labels(coco_subset, "predictions", classes=classes, field="teacher_some", overwrite=True)
    try:
        assert written == len(coco_subset) - 3
        assert set(coco_subset.exists("teacher_some", False).values("id")) == set(unlabelled)
    finally:
        delete_run(coco_subset, "teacher_some")


@pytest.mark.parametrize("content, refused", [
    (b"null", "holds NoneType JSON, not an object"),
    (b"5", "holds int JSON, not an object"),
    ('{"classes": []}'.encode("utf-16"), "is not UTF-8 text"),
])
def test_a_score_file_that_is_not_a_json_object_in_utf8_is_refused_in_words(tmp_path, content, refused):
    path = tmp_path / "scores.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=refused):
        read_score_file(str(path))


def test_any_fiftyone_model(coco_subset):
    classes = ["car", "boat", "tree"]
    config = fout.TorchImageModelConfig(
        dict(
            entrypoint_fcn=lambda: torchvision.models.resnet18(num_classes=len(classes)),
            output_processor_cls="fiftyone.utils.torch.ClassifierOutputProcessor",
            classes=classes,
            image_size=[64, 64],
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
    )
    model = fout.TorchImageModel(config)
    teacher_from_model(coco_subset, model, batch_size=4)
    scores, stored_classes = teacher_scores(coco_subset)
    assert stored_classes == classes and scores.shape == (12, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)
    labels = coco_subset.values("teacher")
    assert len({tuple(np.round(row, 5)) for row in labels}) > 1  # per-image, not constant
    assert not [f for f in coco_subset._dataset.get_field_schema() if f.startswith("inficond_scratch")]


def test_open_clip_zero_shot(coco_subset, tiny_checkpoint):
    classes = ["person", "dog", "car", "pizza"]
    teacher_from_clip(coco_subset, classes, model=TINY_MODEL, pretrained=tiny_checkpoint, batch_size=5)
    scores, stored_classes = teacher_scores(coco_subset)
    assert stored_classes == classes and scores.shape == (12, 4)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)
    assert coco_subset._dataset.get_run_info("teacher").config.source.startswith(f"open_clip:{TINY_MODEL}")
