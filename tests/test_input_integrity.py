"""Inputs that cannot silently corrupt a run: one regression test per way a user's own field, a
generated view, a file that never answers, duplicate or odd keys, or an App user's typing broke
one (issue "Runs that cannot be silently corrupted, round 2", items 6, 7, 10, 11, 12 and 13; round 3,
items 7 and 10).

Real embedded MongoDB, real coco128 images, a real FIFO (``os.mkfifo``) and real 16-bit PNGs."""

import errno
import json
import os
import re
import shutil
import threading

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.utils.torch as fout
import numpy as np
import pytest
import torch
import torchvision
from conftest import COCO128, TINY_MODEL, assert_nothing_written, unique_name
from PIL import Image

from fiftyone_inficond import images
from fiftyone_inficond.deploy.export import export_students
from fiftyone_inficond.errors import InvalidRequest, RunInputsChanged
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.new_concepts import add_concepts
from fiftyone_inficond.overlay import show_concept_overlay
from fiftyone_inficond.students.registry import list_student_runs, train_students
from fiftyone_inficond.teacher import set_teacher_scores, teacher_from_file, teacher_scores

PLUGIN = "@inficond/inficond"
CORPUS = ["person", "dog", "car", "sky", "grass"]
TEACHER_FILE = os.path.join(COCO128, "teacher_yolox_nano.json")


def _compute(samples, checkpoint, **kwargs):
    return compute_concepts(samples, model=TINY_MODEL, pretrained=checkpoint, corpus=CORPUS, batch_size=6, **kwargs)


def execute(name, samples, **params):
    return foo.execute_operator(f"{PLUGIN}/{name}", ctx=dict(view=samples.view(), params=params)).result


def schema(dataset):
    dataset.reload()
    return {name: type(field).__name__ for name, field in dataset.get_field_schema(flat=True).items()}


@pytest.fixture
def scratch():
    """An empty dataset of its own, deleted after the test."""
    dataset = fo.Dataset(unique_name())
    yield dataset
    dataset.delete()


# 6. The overlay field clobbers a user field ---------------------------------------------------


@pytest.mark.parametrize("kind", ["string", "heatmap"])
def test_the_overlay_never_clears_or_writes_a_field_it_did_not_create(coco128, tiny_checkpoint, kind):
    _compute(coco128.limit(6), tiny_checkpoint)
    if kind == "string":
        coco128.set_values("concepts_overlay", [f"note {i}" for i in range(len(coco128))])
    else:  # the overlay's own type, declared by the user: still not the overlay's field
        coco128.add_sample_field("concepts_overlay", fo.EmbeddedDocumentField, embedded_doc_type=fo.Heatmap)
        coco128.limit(3).set_values("concepts_overlay", [fo.Heatmap(map=np.full((2, 2), 0.5))] * 3)
    before = _plain(coco128.values("concepts_overlay"))
    fields = schema(coco128)

    with pytest.raises(InvalidRequest, match=re.escape(
        "Field 'concepts_overlay' holds data that is not a concept overlay, and the heatmaps of concept run "
        "'concepts' can only be drawn in 'concepts_overlay': rename your field (e.g. dataset.rename_sample_field"
        "('concepts_overlay', 'my_concepts_overlay')) to draw them")):
        show_concept_overlay(coco128.limit(4), "dog")

    assert schema(coco128) == fields
    assert _plain(coco128.values("concepts_overlay")) == before
    coco128.first()  # still readable

    coco128.rename_sample_field("concepts_overlay", "my_concepts_overlay")  # the way out the message names
    assert show_concept_overlay(coco128.limit(4), "dog")["samples"] == 4
    assert _plain(coco128.values("my_concepts_overlay")) == before


def _plain(values):
    return [value.map.tolist() if isinstance(value, fo.Heatmap) else value for value in values]


# 7. Generated views ---------------------------------------------------------------------------


def test_nothing_is_written_on_a_view_whose_samples_are_not_the_datasets_own(coco128, tiny_checkpoint):
    subset = coco128.limit(6)
    for sample in subset:
        sample["boxes"] = fo.Detections(detections=[fo.Detection(label="thing", bounding_box=[0.1, 0.1, 0.5, 0.5])])
        sample.save()
    patches = subset.to_patches("boxes")
    fields, patch_fields = schema(coco128), schema(patches._dataset)
    refusal = ("Cannot write {} on this view: a patches view holds temporary copies of the dataset's samples, so "
               f"nothing written there reaches it; run it on dataset '{coco128.name}' or a filtered view of its "
               "samples")
    attempts = [
        ("concepts", lambda view: _compute(view, tiny_checkpoint)),
        ("concepts", lambda view: execute("compute_concepts", view, model=TINY_MODEL, pretrained=tiny_checkpoint,
                                          corpus_source="list", corpus=CORPUS)),
        ("teacher scores", lambda view: teacher_from_file(view, TEACHER_FILE)),
        ("teacher scores", lambda view: set_teacher_scores(view, np.full((6, 2), 0.5), ["a", "b"])),
        ("heatmaps", lambda view: show_concept_overlay(view, "dog")),
    ]
    for what, attempt in attempts:
        with pytest.raises(Exception, match=re.escape(refusal.format(what))):
            attempt(patches)
    with pytest.raises(InvalidRequest, match="a dynamic groups view holds one sample per group; run it on"):
        _compute(subset.group_by("filepath"), tiny_checkpoint)

    for field in ("concepts", "concepts_segments", "teacher", "concepts_overlay"):
        assert_nothing_written(coco128, field)
    assert schema(coco128) == fields and schema(patches._dataset) == patch_fields
    assert _compute(subset, tiny_checkpoint).computed == 6  # the dataset's own samples are fine


# 10. A FIFO or a stalled mount ----------------------------------------------------------------


def _images(tmp_path, names):
    source = os.path.join(COCO128, "images", sorted(os.listdir(os.path.join(COCO128, "images")))[0])
    for name in names:
        shutil.copy(source, tmp_path / name)
    return [str(tmp_path / name) for name in names]


@pytest.mark.timeout(120)
def test_a_fifo_is_reported_unreadable_without_being_opened_and_the_rest_computed(scratch, tiny_checkpoint,
                                                                                 tmp_path):
    fifo = str(tmp_path / "pipe.jpg")
    os.mkfifo(fifo)
    fine = _images(tmp_path, ["a.jpg", "b.jpg"])
    scratch.add_samples([fo.Sample(filepath=p) for p in [fine[0], fifo, fine[1]]])

    result = _compute(scratch, tiny_checkpoint)

    (fifo_id,) = scratch.match({"filepath": fifo}).values("id")
    assert result.computed == 2 and list(result.failed) == [fifo_id]
    assert result.failed[fifo_id] == f"OSError: '{fifo}' is not a regular file (a FIFO, a device or a folder), so it " \
                                     "is not read"
    assert sorted(scratch.exists("concepts").values("filepath")) == sorted(fine)
    assert fifo_id not in scratch.exists("concepts_segments").values("id")
    with pytest.raises(OSError) as opened:  # no reader holds the FIFO: nobody opened it
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    assert opened.value.errno == errno.ENXIO


@pytest.mark.timeout(120)
def test_a_read_that_stalls_is_given_up_and_the_rest_computed(scratch, tiny_checkpoint, tmp_path, monkeypatch):
    paths = _images(tmp_path, ["a.jpg", "stalled.jpg", "c.jpg"])
    scratch.add_samples([fo.Sample(filepath=p) for p in paths])
    released, real_open = threading.Event(), images.Image.open

    def open_image(path, *args, **kwargs):  # a read that hangs like one on a stalled network mount
        if path == paths[1]:
            released.wait(60)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(images.Image, "open", open_image)
    monkeypatch.setattr(images, "READ_TIMEOUT_S", 0.5)
    try:
        result = _compute(scratch, tiny_checkpoint)
    finally:
        released.set()
    (stalled_id,) = scratch.match({"filepath": paths[1]}).values("id")
    assert result.computed == 2 and result.failed == {
        stalled_id: f"TimeoutError: Reading '{paths[1]}' took over 0.5 s (a stalled network mount?)"}
    assert sorted(scratch.exists("concepts").values("filepath")) == [paths[0], paths[2]]


# 11. Duplicate keys; 16-bit images ------------------------------------------------------------


def test_a_teacher_keyed_by_file_path_refuses_samples_sharing_a_path_as_by_file_name(coco128):
    paths = coco128.values("filepath")
    coco128.add_samples([fo.Sample(filepath=p) for p in paths[:2]])  # two images added twice
    fields = schema(coco128)
    with pytest.raises(InvalidRequest, match=re.escape(
            f"Several samples share the file path(s) {sorted(paths[:2])}: match by 'id' instead, or remove "
            "the duplicate samples from the view")):
        set_teacher_scores(coco128, np.full((128, 2), 0.5), ["a", "b"], keys=paths, key_field="filepath")
    names = sorted(os.path.basename(p) for p in paths[:2])
    with pytest.raises(InvalidRequest, match=re.escape(
            f"Several samples share the file name(s) {names}: match by 'filepath' or 'id' instead, or "
            "remove the duplicate samples from the view")):
        teacher_from_file(coco128, TEACHER_FILE)
    assert_nothing_written(coco128, "teacher")
    assert schema(coco128) == fields


def test_a_16_bit_png_has_the_concepts_of_its_8_bit_version(scratch, tiny_checkpoint, tmp_path):
    (source,) = _images(tmp_path, ["source.jpg"])
    grey = np.asarray(Image.open(source).convert("L"))
    Image.fromarray(grey).save(tmp_path / "8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "16.png")  # the same levels, 16 bits each
    with Image.open(tmp_path / "16.png") as written:
        assert written.mode == "I;16" and np.asarray(written).max() > 255
    scratch.add_samples([fo.Sample(filepath=str(tmp_path / n)) for n in ("8.png", "16.png")])

    assert _compute(scratch, tiny_checkpoint).computed == 2
    eight, sixteen = np.stack(scratch.values("concepts"))
    np.testing.assert_allclose(sixteen, eight, atol=1e-5)
    assert images.read_image(str(tmp_path / "16.png")).getextrema() == Image.open(source).convert(
        "L").convert("RGB").getextrema()  # not all white


# 12. A NUL byte in a class name ---------------------------------------------------------------


def test_a_class_name_holding_a_nul_byte_is_refused_at_import(coco_subset, tmp_path):
    refusal = re.escape("The teacher class name 'c\\x00t' holds a NUL character (\\x00), which the database "
                        "cannot store: remove it from the name")
    with pytest.raises(InvalidRequest, match=refusal):
        set_teacher_scores(coco_subset, np.full((12, 2), 0.5), ["dog", "c\x00t"])
    path = tmp_path / "nul.json"
    files = [os.path.basename(p) for p in coco_subset.values("filepath")]
    path.write_text(json.dumps({"classes": ["dog", "c\x00t"], "files": files, "scores": [[0.5, 0.5]] * 12}))
    with pytest.raises(InvalidRequest, match=refusal):
        teacher_from_file(coco_subset, str(path))
    assert_nothing_written(coco_subset._dataset, "teacher")


# 13. The zoo source of the teacher form -------------------------------------------------------


def _tiny_zoo_model():
    config = fout.TorchImageModelConfig(dict(
        entrypoint_fcn=lambda: torchvision.models.resnet18(num_classes=2),
        output_processor_cls="fiftyone.utils.torch.ClassifierOutputProcessor",
        classes=["cat", "dog"], image_size=[32, 32], image_mean=[0.5] * 3, image_std=[0.25] * 3,
    ))
    return fout.TorchImageModel(config)


def _form(dataset, params):
    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    return foo.get_operator(f"{PLUGIN}/import_teacher_scores").resolve_input(ctx).type.properties


def test_app_users_may_load_only_the_zoo_models_the_server_lists(coco_subset, monkeypatch):
    import fiftyone.zoo as foz

    loaded = []
    monkeypatch.setattr(foz, "load_zoo_model", lambda name, *a, **k: loaded.append(name) or _tiny_zoo_model())
    monkeypatch.delenv("INFICOND_ZOO_MODELS", raising=False)
    fields = schema(coco_subset._dataset)
    off = ("Zoo teachers are turned off in this App: ask whoever runs it to list the FiftyOne zoo models App "
           "users may load in INFICOND_ZOO_MODELS (comma-separated)")
    form = _form(coco_subset._dataset, {"source": "zoo"})
    assert "model_name" not in form and form["zoo_off"].view.description == off
    with pytest.raises(Exception, match=re.escape(off)):
        execute("import_teacher_scores", coco_subset, source="zoo", model_name="resnet50-imagenet-torch")

    monkeypatch.setenv("INFICOND_ZOO_MODELS", "tiny-a, tiny-b")
    assert _form(coco_subset._dataset, {"source": "zoo"})["model_name"].type.values == ["tiny-a", "tiny-b"]
    with pytest.raises(Exception, match="model_name"):  # the form's choices
        execute("import_teacher_scores", coco_subset, source="zoo", model_name="resnet50-imagenet-torch")
    assert loaded == [] and schema(coco_subset._dataset) == fields
    assert_nothing_written(coco_subset._dataset, "teacher")

    assert execute("import_teacher_scores", coco_subset, source="zoo", model_name="tiny-b")["written"] == 12
    assert loaded == ["tiny-b"] and teacher_scores(coco_subset)[1] == ["cat", "dog"]


# Round 3, item 10: what CLIP cannot tell apart, and names that differ only in case -----------------


def test_two_long_concepts_that_differ_after_the_models_77_tokens_are_refused_before_any_write(coco_subset,
                                                                                              tiny_checkpoint):
    long = "a very long description of a scene " * 60
    corpus = ["dog", long + "with a cat", long + "with a horse"]
    with pytest.raises(InvalidRequest, match=r"Concepts 'a very long .*…' and 'a very long .*…' read the same to "
                                             r"inficond-tiny-vit, which reads only the first 77 tokens"):
        compute_concepts(coco_subset, model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=corpus, field="c")
    assert_nothing_written(coco_subset._dataset, "c")
    _compute(coco_subset, tiny_checkpoint, field="c")
    with pytest.raises(InvalidRequest, match="read the same to"):
        add_concepts(coco_subset, ["🐶" * 90 + " one", "🐶" * 90 + " two"], field="c")  # 2+ tokens an emoji
    assert len(coco_subset.first()["c"]) == len(CORPUS)


def test_a_teacher_class_spelled_in_another_case_than_the_ground_truth_is_refused_at_training(coco_subset,
                                                                                             tiny_checkpoint):
    _compute(coco_subset, tiny_checkpoint)
    set_teacher_scores(coco_subset, np.random.default_rng(0).random((12, 2)), ["Person", "dog"])
    with pytest.raises(InvalidRequest, match="The teacher's class 'Person' is 'person' in 'ground_truth': import "
                                             "the teacher again with the ground truth's spelling"):
        train_students(coco_subset, key="s", epochs=1, budget=None)
    set_teacher_scores(coco_subset, np.random.default_rng(0).random((12, 2)), ["Cat", "Dog"], overwrite=True)
    with pytest.raises(InvalidRequest, match="is 'cat' in 'ground_truth'|is 'dog' in 'ground_truth'"):
        train_students(coco_subset, key="s", epochs=1, budget=None)
    set_teacher_scores(coco_subset, np.random.default_rng(0).random((12, 2)), ["zebu", "yak"], overwrite=True)
    with pytest.raises(InvalidRequest, match="None of the teacher's 2 classes is a label in 'ground_truth'"):
        train_students(coco_subset, key="s", epochs=1, budget=None)
    assert list_student_runs(coco_subset) == []


# Round 3, item 7: a checkpoint rewritten at the same path after extraction -------------------------


def test_a_checkpoint_rewritten_after_extraction_stops_export_and_added_concepts(coco_subset, tiny_checkpoint,
                                                                                tmp_path):
    checkpoint = tmp_path / "ours.pt"
    shutil.copy(tiny_checkpoint, checkpoint)
    _compute(coco_subset, str(checkpoint))
    set_teacher_scores(coco_subset, np.random.default_rng(0).random((12, 2)), ["person", "dog"])
    train_students(coco_subset, key="s", epochs=1, budget=None)
    weights = torch.load(checkpoint)
    torch.save({name: value + 0.05 if value.is_floating_point() else value for name, value in weights.items()},
               checkpoint)  # someone retrained it
    rewritten = f"Checkpoint '{checkpoint}' was rewritten since these concepts were computed with it"
    with pytest.raises(RunInputsChanged, match=re.escape(rewritten)):
        add_concepts(coco_subset, [f"zebra crossing {unique_name()}"])  # not in the shared text cache
    assert len(coco_subset.first()["concepts"]) == len(CORPUS)
    with pytest.raises(RunInputsChanged, match=re.escape(rewritten)):
        export_students(coco_subset, str(tmp_path / "export"), key="s")
    assert not (tmp_path / "export").exists()
