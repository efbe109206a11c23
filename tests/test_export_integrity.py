"""Exports and their predictions cannot silently corrupt anything: one regression test per way a
careless name or a hand-edited file broke them (issue "Runs that cannot be silently corrupted,
round 2", items 4, 5 and the export parts of 12; round 3, items 2, 9 and 14).

Real embedded MongoDB, real coco128 images, one student run exported once for the module."""

import hashlib
import json
import logging
import os
import re
import subprocess
import sys

import fiftyone.operators as foo
import numpy as np
import pytest
from conftest import assert_nothing_written, unique_name
from fiftyone.operators.executor import ExecutionError

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.deploy.export import EXPORT_DIR_ENV, MANIFEST, export_students, manifest_digest
from fiftyone_inficond.deploy.loading import list_exports, load_export
from fiftyone_inficond.deploy.model import apply_export
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.labels import unfinished_predictions
from fiftyone_inficond.students.registry import delete_students, list_student_runs, train_students

PLUGIN = "@inficond/inficond"


@pytest.fixture(scope="module")
def trained(distilled_base):
    """A dataset with concepts, teacher scores and a student run evaluated against 'ground_truth'."""
    dataset = distilled_base.clone(unique_name())
    train_students(dataset, epochs=1)
    yield dataset
    for key in list_student_runs(dataset):
        delete_students(dataset, key)
    dataset.delete()


@pytest.fixture(scope="module")
def colleague(trained, tmp_path_factory):
    """A colleague's export of the run, which nothing done in these tests may touch."""
    directory = tmp_path_factory.mktemp("colleague") / "export"
    export_students(trained, directory)
    return directory


def execute(operator, samples, **params):
    return foo.execute_operator(f"{PLUGIN}/{operator}", ctx=dict(view=samples.view(), params=params)).result


def files(folder):
    """Every file under ``folder`` (relative path → SHA-256): what must stay as it was."""
    return {os.path.relpath(os.path.join(top, name), folder):
            hashlib.sha256(open(os.path.join(top, name), "rb").read()).hexdigest()
            for top, _, names in os.walk(folder) for name in names}


def raw_samples(dataset):
    """Every sample as stored, byte for byte (arrays as their stored bytes), with the schema."""
    dataset.reload()
    fields = sorted(dataset.get_field_schema())
    return fields, list(fiftyone_api.stream_documents(dataset, fields))


def copy_export(source, target):
    target.mkdir(parents=True)
    for name in os.listdir(source):
        (target / name).write_bytes((source / name).read_bytes())
    return target


# Item 4: predicting into a field that holds other data.

def test_predictions_never_replace_the_ground_truth_concepts_teacher_scores_or_other_data(trained, colleague,
                                                                                           monkeypatch):
    monkeypatch.setenv(EXPORT_DIR_ENV, str(colleague.parent))
    trained.clone_sample_field("ground_truth", "theirs")  # someone's labels, not predicted by this plugin
    view = trained.limit(5)
    try:
        before = raw_samples(trained)
        refused = {"ground_truth": "the ground truth student run 'students' is evaluated against",
                   "teacher": "teacher scores", "concepts": "concept vectors", "concepts_segments": "concept segments",
                   "theirs": "labels this plugin did not predict", "filepath": "StringField values"}
        for field, held in refused.items():
            with pytest.raises(InvalidRequest, match=f"Field '{field}' holds {held}, .*predict into 'student' instead"):
                apply_export(view, colleague, label_field=field)
        with pytest.raises(ExecutionError, match="holds the ground truth.*predict into 'student' instead"):
            execute("apply_student_export", view, export="export", label_field="ground_truth")
        assert raw_samples(trained) == before  # the ground truth, byte for byte, and everything else

        assert apply_export(view, colleague, label_field="student") == 5
        first = view.values("student")
        assert apply_export(view, colleague, label_field="student") == 5  # its own predictions: allowed again
        assert view.values("student") == first
        trained.rename_sample_field("student", "student_2")
        trained.clone_sample_field("theirs", "student")
        with pytest.raises(InvalidRequest, match="predict into 'student_2' instead"):  # a field it may write
            apply_export(view, colleague, label_field="ground_truth")
    finally:
        for field in ("theirs", "student", "student_2"):
            if trained.has_sample_field(field):
                trained.delete_sample_field(field)


# Item 5: an overwrite deletes whatever sits at the target.

def test_an_overwrite_never_replaces_a_folder_that_is_not_an_export_or_holds_more(trained, colleague, tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('my work')\n")
    (project / "README.md").write_text("mine\n")
    (tmp_path / "empty").mkdir()
    annotated = copy_export(colleague, tmp_path / "annotated")
    (annotated / "notes.txt").write_text("what this export is for\n")
    before = files(tmp_path)
    for folder in (project, tmp_path / "empty"):
        with pytest.raises(InvalidRequest, match="is not a student export, so no export replaces it: choose another"):
            export_students(trained, folder, overwrite=True)
    with pytest.raises(InvalidRequest, match="also holds 'notes.txt', which replacing it would delete"):
        export_students(trained, annotated, overwrite=True)
    assert files(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["annotated", "empty", "project"]
    assert load_export(annotated).manifest == load_export(colleague).manifest


def test_exports_never_nest_and_the_app_never_replaces_a_folder_of_exports(trained, colleague, tmp_path, monkeypatch):
    root = tmp_path / "exports"
    good = copy_export(colleague, root / "good")
    older = copy_export(colleague, good / "older")  # nested before nesting was refused
    team = [copy_export(colleague, root / "team" / name) for name in ("x", "y")]
    before = files(root)
    for inside, outer in ((good / "students.pt", good), (good / "inner", good), (older / "deeper", older)):
        with pytest.raises(InvalidRequest, match=f"'{re.escape(str(outer))}' is an export, and an export never holds"):
            export_students(trained, inside, overwrite=True)
    with pytest.raises(InvalidRequest, match="also holds 'older', which replacing it would delete"):
        export_students(trained, good, overwrite=True)
    with pytest.raises(InvalidRequest, match="is not a student export, so no export replaces it"):
        export_students(trained, root / "team", overwrite=True)
    monkeypatch.setenv(EXPORT_DIR_ENV, str(root))
    for name, refusal in {"team": "is not a student export", "good": "also holds 'older'",
                          "good/students.pt": "plain folder name", "team/x": "plain folder name",
                          ".team": "plain folder name"}.items():
        with pytest.raises(ExecutionError, match=refusal):
            execute("export_students", trained, key="students", name=name, overwrite=True)
    assert files(root) == before and list_exports(root) == ["good"]
    assert all(load_export(folder).manifest == load_export(colleague).manifest for folder in (good, older, *team))


# Item 12, the export parts.

def test_an_export_name_with_a_nul_or_other_control_character_is_refused_in_the_librarys_words(trained, tmp_path,
                                                                                             monkeypatch):
    for name in ("bad\0name", "line\nbreak"):
        for directory, root in ((tmp_path / name, None), (name, tmp_path)):
            with pytest.raises(InvalidRequest, match="cannot hold control characters"):
                export_students(trained, directory, root=root)
        with pytest.raises(InvalidRequest, match="cannot hold control characters"):
            load_export(tmp_path / name)
    monkeypatch.setenv(EXPORT_DIR_ENV, str(tmp_path))
    with pytest.raises(ExecutionError, match="cannot hold control characters"):
        execute("export_students", trained, key="students", name="bad\0name")
    assert os.listdir(tmp_path) == []


def assert_same_predictions(labels, expected):
    """Equal classes and probabilities (to float noise: batches of other sizes), ``None`` where expected."""
    assert [label is None for label in labels] == [label is None for label in expected]
    for label, other in zip(labels, expected):
        if label is not None:
            assert [c.label for c in label.classifications] == [c.label for c in other.classifications]
            np.testing.assert_allclose([c.confidence for c in label.classifications],
                                       [c.confidence for c in other.classifications], atol=1e-5)


def test_an_unreadable_image_leaves_its_sample_unlabelled_and_the_others_labelled(coco128, colleague, tmp_path,
                                                                                 caplog, monkeypatch):
    view = coco128.limit(4)
    assert apply_export(view, colleague, "student", batch_size=2, positives_only=False) == 4
    labelled = view.values("student")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    sample = view.skip(1).first()
    sample.filepath = str(broken)
    sample.save()
    fields = sorted(set(coco128.get_field_schema()) - {"student", "last_modified_at"})
    before = list(fiftyone_api.stream_documents(coco128, fields))
    with caplog.at_level(logging.WARNING, logger="fiftyone_inficond.deploy.model"):
        assert apply_export(view, colleague, "student", batch_size=2, positives_only=False) == 3
    assert "1 of 4 images could not be read" in caplog.text and "broken.jpg" in caplog.text
    assert_same_predictions(view.values("student"), [labelled[0], None, *labelled[2:]])
    assert list(fiftyone_api.stream_documents(coco128, fields)) == before

    alone = coco128.select(sample.id)  # a batch of unreadable images only: no error about a missing field
    assert apply_export(alone, colleague, "fresh", batch_size=1) == 0 and coco128.count("fresh") == 0
    monkeypatch.setenv(EXPORT_DIR_ENV, str(colleague.parent))
    applied = execute("apply_student_export", view, export="export", label_field="student", positives_only=False)
    assert applied["samples"] == 3 and applied["unreadable"] == 1
    assert "1 sample was left unlabelled: its image could not be read" in applied["message"]


def test_a_write_of_predictions_killed_midway_is_recorded_and_the_next_one_finishes_it(trained, colleague,
                                                                                     coco128, tmp_path):
    coco128.persistent = True
    view = coco128.limit(6)
    apply_export(view, colleague, "student")
    first = load_export(colleague).manifest["digest"]
    second = export_students(trained, tmp_path / "pruned", prune=0.05)["digest"]  # another export of the run
    child = (f"import fiftyone as fo\nfrom fiftyone_inficond.deploy.model import apply_export\n"
             f"apply_export(fo.load_dataset({coco128.name!r}).limit(6), {str(tmp_path / 'pruned')!r}, 'student', "
             f"batch_size=2)\n")
    env = {**os.environ, "INFICOND_CRASHPOINT": "apply:batch-written"}
    killed = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert unfinished_predictions(coco128, "student") == second
    assert view.count_values("student.export") == {first: 4, second: 2}  # which sample has which, recorded
    apply_export(view, tmp_path / "pruned", "student")
    assert unfinished_predictions(coco128, "student") is None
    assert view.count_values("student.export") == {second: 6}


FULL_DISK = """
import resource, signal, sys
import fiftyone as fo
from fiftyone_inficond.deploy.export import export_students
from fiftyone_inficond.errors import InvalidRequest
dataset = fo.load_dataset(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails as on a full disk (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
try:
    export_students(dataset, sys.argv[2])
except InvalidRequest as refused:
    print("REFUSED", refused)
"""


def test_a_disk_that_fills_up_during_an_export_is_refused_in_words_and_leaves_no_folder(trained, tmp_path):
    trained.persistent = True
    target = tmp_path / "exports" / "full"
    done = subprocess.run([sys.executable, "-c", FULL_DISK, trained.name, str(target), str(64 * 1024)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # the process (an App server) lives on
    assert done.stdout.startswith(f"REFUSED Could not write the export to '{target.parent}'"), done.stdout
    assert "free some space or choose a folder you can write to" in done.stdout
    assert os.listdir(target.parent) == []  # no partial folder


def _reversed(manifest):
    manifest["classes"] = manifest["classes"][::-1]


def _truncated(manifest):
    manifest["classes"] = manifest["classes"][:-1]


EDITS = {  # name: (edit, reseal the digest as a careful forger would, the refusal)
    "classes relabelled": (_reversed, False, "was edited or corrupted"),
    "classes truncated": (_truncated, False, "was edited or corrupted"),
    "threshold deleted": (lambda m: m.pop("threshold"), False, "was edited or corrupted"),
    "digest deleted": (lambda m: m.pop("digest"), False, "was edited or corrupted"),
    "resealed, classes truncated": (_truncated, True, "do not fit its manifest"),
    "resealed, classes repeated": (lambda m: m.update(classes=["person"] * len(m["classes"])), True,
                                   "no list of distinct class names"),
    "resealed, threshold a string": (lambda m: m.update(threshold="0.5"), True, "no decision threshold"),
    "resealed, preprocessing deleted": (lambda m: m.pop("preprocess"), True, "no preprocessing open_clip can apply"),
    "resealed, unknown interpolation": (lambda m: m["preprocess"].update(interpolation="nearest"), True,
                                        "no preprocessing open_clip can apply"),
    "resealed, one concept more kept": (lambda m: m.update(concepts_kept=m["concepts_kept"] + 1), True,
                                        "do not fit its manifest"),
    "resealed, classes relabelled": (_reversed, True, "was edited .its classes, threshold or concepts are not"),
    "resealed, threshold changed": (lambda m: m.update(threshold=0.9), True, "was edited .its classes"),
    "resealed, older version": (lambda m: m.update(format_version=2), True, "is not a version-3 student export"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_a_hand_edited_manifest_is_refused_in_the_librarys_words_and_nothing_is_written(coco128, colleague,
                                                                                       tmp_path, edit):
    change, reseal, refusal = EDITS[edit]
    folder = copy_export(colleague, tmp_path / "edited")
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    if reseal:
        manifest["digest"] = manifest_digest(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    before = files(folder)
    with pytest.raises(InvalidRequest, match=refusal):
        load_export(folder)
    with pytest.raises(InvalidRequest, match=refusal):
        apply_export(coco128.limit(4), folder, "student")
    assert_nothing_written(coco128, "student")
    assert files(folder) == before


def test_concept_names_swapped_with_every_digest_recomputed_are_refused(coco128, colleague, tmp_path):
    folder = copy_export(colleague, tmp_path / "edited")
    names = (folder / "corpus.txt").read_text().split("\n")
    names[0], names[1] = names[1], names[0]
    (folder / "corpus.txt").write_text("\n".join(names))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["corpus.txt"] = hashlib.sha256((folder / "corpus.txt").read_bytes()).hexdigest()
    manifest["digest"] = manifest_digest(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    with pytest.raises(InvalidRequest, match="was edited .its classes, threshold or concepts are not those"):
        load_export(folder)
    with pytest.raises(InvalidRequest, match="was edited"):
        apply_export(coco128.limit(4), folder, "student")
    assert_nothing_written(coco128, "student")


def test_a_manifest_that_is_not_an_object_is_refused(colleague, tmp_path):
    folder = copy_export(colleague, tmp_path / "edited")
    (folder / MANIFEST).write_text("[]")
    with pytest.raises(InvalidRequest, match="is not a version-3 student export"):
        load_export(folder)
