"""Exported students: the same predictions in plain torch, through apply_model and the operator;
and an export that escapes its folder, exists already, was altered or pickles code is refused."""

import errno
import json
import os
import pathlib
import pickle
import subprocess
import sys

import fiftyone.operators as foo
import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, unique_name
from fiftyone.operators.executor import ExecutionError

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.deploy.export import EXPORT_DIR_ENV, MANIFEST, PROGRAM, TENSORS, export_students, manifest_digest
from fiftyone_inficond.deploy.loading import load_export
from fiftyone_inficond.deploy.model import apply_export
from fiftyone_inficond.errors import InvalidRequest, MissingFile
from fiftyone_inficond.images import image_batches
from fiftyone_inficond.students.registry import delete_students, list_student_runs, load_students, train_students

PLUGIN = "@inficond/inficond"
PLAIN_TORCH = """
import sys, torch
program = torch.jit.load(sys.argv[1])
probabilities, vectors = program(torch.load(sys.argv[2], weights_only=True))
torch.save(probabilities, sys.argv[3])
loaded = sorted(m.split(".")[0] for m in sys.modules)
assert not {"fiftyone", "fiftyone_inficond", "open_clip", "PIL"} & set(loaded), loaded
"""


@pytest.fixture(scope="module")
def distilled(distilled_base):
    """One copy for the module: its tests only read the run, export it and write predictions."""
    dataset = distilled_base.clone(unique_name())
    yield dataset
    for key in list_student_runs(dataset):
        delete_students(dataset, key)
    dataset.delete()


@pytest.fixture(scope="module")
def revisions(distilled):
    """Revision 0 and revision 1 of one run, trained once for the module."""
    run = train_students(distilled, epochs=3, budget=8)  # sparse, as exports prune; a fixed budget: no path
    first = load_students(distilled)
    run.tune(up={"person": ["sky"]}, epochs=1)
    return first, run


@pytest.fixture
def tuned(revisions):
    return revisions[1]


def execute(operator, samples, **params):
    return foo.execute_operator(f"{PLUGIN}/{operator}", ctx=dict(view=samples.view(), params=params)).result


def _images(dataset, checkpoint, n=8):
    """The first ``n`` images preprocessed exactly as concept extraction does."""
    clip = load_clip(TINY_MODEL, checkpoint, device="cpu")
    _, images, _ = next(iter(image_batches(dataset.limit(n).values("filepath"), clip.preprocess, batch_size=n)))
    return images


def test_an_exported_run_predicts_in_plain_torch_what_the_library_predicts(tuned, distilled, tiny_checkpoint,
                                                                           tmp_path):
    manifest = export_students(distilled, tmp_path / "export")
    assert manifest["run"]["revision"] == 1 and manifest["classes"] == tuned.classes
    assert manifest["bytes"] == sum(f.stat().st_size for f in (tmp_path / "export").iterdir())
    torch.save(_images(distilled, tiny_checkpoint), tmp_path / "images.pt")
    subprocess.run([sys.executable, "-c", PLAIN_TORCH, str(tmp_path / "export" / PROGRAM), str(tmp_path / "images.pt"),
                    str(tmp_path / "out.pt")], check=True, env={"PATH": os.environ["PATH"]})
    _, expected = tuned.predict(distilled.limit(8))
    np.testing.assert_allclose(torch.load(tmp_path / "out.pt").numpy(), expected, atol=1e-5)


def test_an_earlier_revision_is_exported_with_its_own_weights(tuned, distilled, tmp_path):
    manifest = export_students(distilled, tmp_path / "first", revision=0)
    first = load_export(tmp_path / "first")
    assert manifest["run"]["revision"] == 0
    assert not np.allclose(first.tensors["weight"].numpy(), tuned.weight)  # the newest is revision 1


def test_apply_model_with_an_export_writes_the_librarys_probabilities_and_explains_them(tuned, distilled, tmp_path):
    export_students(distilled, tmp_path / "export")
    likeliest = np.argsort(-tuned.probabilities().max(axis=1), kind="stable")[:8]  # some the students call positive
    view = distilled.select([tuned.ids[i] for i in likeliest])
    assert apply_export(view, tmp_path / "export", "student", positives_only=False) == 8
    ids, expected = tuned.predict(view)
    labels = view.values("student")
    got = np.array([[c.confidence for c in label.classifications] for label in labels])
    assert [c.label for c in labels[0].classifications] == tuned.classes
    np.testing.assert_allclose(got, expected, atol=1e-4)  # images decoded by FiftyOne instead of PIL
    positives = [c for label in labels for c in label.classifications if c.confidence >= tuned.threshold]
    assert positives and all(0 < len(c.top_concepts) <= 3 for c in positives)
    assert all(set(c.top_concepts) <= set(tuned.concepts) and min(c.top_contributions) > 0 for c in positives)


def test_by_default_only_the_classes_the_students_call_positive_are_labelled(tuned, distilled, tmp_path):
    export_students(distilled, tmp_path / "export")
    apply_export(distilled, tmp_path / "export", "student")
    _, probabilities = tuned.predict(distilled)
    labelled = [{c.label for c in label.classifications} if label else set() for label in distilled.values("student")]
    expected = [{c for c, p in zip(tuned.classes, row) if p >= tuned.threshold} for row in probabilities]
    assert labelled == expected and any(labelled) and not all(len(s) == len(tuned.classes) for s in labelled)


def test_concepts_below_the_pruning_level_are_left_out_and_the_change_is_reported(tuned, distilled, tmp_path):
    largest = np.abs(tuned.weight).max(axis=0)
    level = float(np.quantile(largest[largest > 0], 0.5))  # about half the concepts the students use
    manifest = export_students(distilled, tmp_path / "export", prune=level)
    export = load_export(tmp_path / "export")
    kept = np.abs(tuned.weight).max(axis=0) > level
    assert manifest["concepts_kept"] == kept.sum() < len(tuned.concepts)
    assert export.kept_concepts == [c for c, k in zip(tuned.concepts, kept) if k]
    pruned = tuned.weight * kept
    expected = 1 / (1 + np.exp(-(tuned.inputs @ pruned.T + tuned.bias)))
    assert manifest["prune_max_change"] == pytest.approx(np.abs(expected - tuned.probabilities()).max(), abs=1e-5)
    assert 0 < manifest["prune_max_change"] < 1


def test_an_export_leading_outside_its_root_is_refused_and_nothing_is_written(tuned, distilled, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "link")
    for name in ("../escaped", "/tmp/escaped", "link/inside", ""):
        with pytest.raises(InvalidRequest, match="plain folder name"):
            export_students(distilled, name, root=root)
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "root"] and os.listdir(tmp_path / "elsewhere") == []


def test_an_existing_export_is_kept_unless_overwrite_is_asked(tuned, distilled, tmp_path):
    export_students(distilled, tmp_path / "export", revision=0)
    with pytest.raises(InvalidRequest, match="already exists"):
        export_students(distilled, tmp_path / "export")
    assert load_export(tmp_path / "export").manifest["run"]["revision"] == 0
    export_students(distilled, tmp_path / "export", overwrite=True)
    assert load_export(tmp_path / "export").manifest["run"]["revision"] == 1
    assert os.listdir(tmp_path) == ["export"]  # no staging or old folder left behind


def test_a_target_that_cannot_be_created_fails_clearly_and_leaves_nothing(tuned, distilled, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(InvalidRequest, match="choose a folder you can write to"):
        export_students(distilled, tmp_path / "a-file" / "export")
    assert os.listdir(tmp_path) == ["a-file"]


def test_a_full_disk_midway_keeps_the_old_export_and_leaves_no_partial_one(tuned, distilled, tmp_path, monkeypatch):
    export_students(distilled, tmp_path / "export", revision=0)

    write_bytes = pathlib.Path.write_bytes

    def full_disk(path, data):
        if path.name == TENSORS:  # the program is written already
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(path, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full_disk)
    with pytest.raises(InvalidRequest, match="No space left on device.*free some space"):
        export_students(distilled, tmp_path / "export", overwrite=True)
    assert os.listdir(tmp_path) == ["export"]
    assert load_export(tmp_path / "export").manifest["run"]["revision"] == 0


def test_a_tampered_file_is_refused(tuned, distilled, tmp_path):
    export_students(distilled, tmp_path / "export")
    tensors = tmp_path / "export" / TENSORS
    tensors.write_bytes(tensors.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(InvalidRequest, match="differs from its manifest"):
        load_export(tmp_path / "export")


class _Payload:
    """A pickle that runs code when loaded: it would create the file ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", [PROGRAM, TENSORS])
def test_a_pickled_object_is_never_loaded_even_with_a_matching_manifest(tuned, distilled, tmp_path, name):
    export_students(distilled, tmp_path / "export")
    marker = tmp_path / "pwned"
    torch.save({"weight": _Payload(str(marker))}, tmp_path / "export" / name)
    with open(tmp_path / "export" / name, "ab") as f:
        f.write(pickle.dumps(_Payload(str(marker))))
    manifest = json.loads((tmp_path / "export" / MANIFEST).read_text())
    manifest["files"][name] = __import__("hashlib").sha256((tmp_path / "export" / name).read_bytes()).hexdigest()
    manifest["digest"] = manifest_digest(manifest)  # a manifest that matches in every way
    (tmp_path / "export" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InvalidRequest, match="could not be read"):
        load_export(tmp_path / "export")
    assert not marker.exists()


def test_a_folder_without_a_manifest_is_not_an_export(tmp_path):
    with pytest.raises(MissingFile, match="not a student export"):
        load_export(tmp_path)


def test_the_operators_export_into_the_export_folder_and_apply_what_the_library_predicts(revisions, distilled,
                                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv(EXPORT_DIR_ENV, str(tmp_path))
    exported = execute("export_students", distilled, key="students", revision=0, name="mine")
    assert exported["directory"] == str(tmp_path / "mine") and exported["revision"] == 0
    assert "revision 0" in exported["message"] and "MB" in exported["message"]
    with pytest.raises(ExecutionError, match="plain folder name"):
        execute("export_students", distilled, key="students", name="../elsewhere")
    view = distilled.limit(8)
    applied = execute("apply_student_export", view, export="mine", label_field="applied", positives_only=False)
    assert applied["samples"] == 8 and "`mine`" in applied["message"]
    got = np.array([[c.confidence for c in label.classifications] for label in view.values("applied")])
    np.testing.assert_allclose(got, revisions[0].predict(view)[1], atol=1e-4)  # revision 0's, not the newest
    assert not np.allclose(got, revisions[1].predict(view)[1], atol=1e-4)
