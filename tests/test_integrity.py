"""Runs cannot be silently corrupted or lost: one regression test per way a careless user, a
colleague or a crash broke them (issue "Runs that cannot be silently corrupted or lost").

Real embedded MongoDB, real coco128 images, crashes as a real SIGKILL of a child process at
the named point (:mod:`fiftyone_inficond.crashpoints`). Runs train over every concept
(``budget=None``): what is tested is a run's life, not the budget path, which costs 3 s a run."""

import os
import subprocess
import sys

import fiftyone as fo
import numpy as np
import pytest
from conftest import COCO128, TINY_MODEL, assert_nothing_written, run_python, unique_name

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.corpus import load_corpus
from fiftyone_inficond.deploy.export import export_students
from fiftyone_inficond.errors import InficondError, InvalidRequest, RunInputsChanged, StaleRunError, UnknownName
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.students import data, run_cache, store
from fiftyone_inficond.students.registry import (
    delete_students,
    list_student_runs,
    load_students,
    rename_students,
    student_history,
    train_students,
)
from fiftyone_inficond.teacher import set_teacher_scores, teacher_from_file, teacher_scores

TEACHER_FILE = os.path.join(COCO128, "teacher_yolox_nano.json")
PLUGIN = "@inficond/inficond"


def snapshot(dataset):
    """Everything a refused request must leave as it was: runs and configs, history, schema."""
    dataset.reload()
    runs = {key: fiftyone_api.stored_run_config(dataset, key) for key in dataset.list_runs()}
    history = store._history().count_documents({"dataset_id": fiftyone_api.dataset_id(dataset)})
    return runs, history, sorted(dataset.get_field_schema())


def run_killed(code, point):
    """Runs ``code`` in a child process that SIGKILLs itself at crash point ``point``."""
    env = {**os.environ, "INFICOND_CRASHPOINT": point}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == -9, done.stderr  # killed at the point, not finished or failed


def _child(dataset, body):
    return (
        "import fiftyone as fo\n"
        "from fiftyone_inficond.students.registry import train_students, delete_students, load_students\n"
        f"ds = fo.load_dataset('{dataset.name}')\n" + body
    )


def execute(name, samples, **params):
    import fiftyone.operators as foo

    return foo.execute_operator(f"{PLUGIN}/{name}", ctx=dict(view=samples.view(), params=params)).result


# 1. Another run destroyed -----------------------------------------------------------------


def test_a_student_key_never_destroys_a_concept_or_teacher_run(distilled):
    run = train_students(distilled, key="kept", epochs=1, budget=None)
    before = snapshot(distilled)
    teacher_before = teacher_scores(distilled)[0]
    attempts = [
        (lambda: train_students(distilled, key="teacher", overwrite=True),
         "'teacher' is a teacher run, not a student run"),
        (lambda: train_students(distilled, key="concepts", overwrite=True),
         "'concepts' is a concept run, not a student run"),
        (lambda: delete_students(distilled, "concepts"), "'concepts' is a concept run, not a student run"),
        (lambda: rename_students(distilled, "teacher", "renamed"), "'teacher' is a teacher run, not a student run"),
    ]
    for attempt, message in attempts:
        with pytest.raises(InficondError, match=message):
            attempt()
        assert snapshot(distilled) == before
    assert np.array_equal(teacher_scores(distilled)[0], teacher_before)
    assert load_students(distilled, "kept").weight.tobytes() == run.weight.tobytes()


# 2. Silently wrong students after the inputs change ----------------------------------------


def test_teacher_classes_in_another_order_are_noticed_and_restoring_them_recovers(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    scores, classes = teacher_scores(distilled)
    ids = distilled.values("id")
    order = np.random.default_rng(0).permutation(len(classes))
    set_teacher_scores(distilled, scores[:, order], [classes[j] for j in order], keys=ids, overwrite=True)
    with pytest.raises(RunInputsChanged, match="teacher classes in 'teacher' changed order since run 's' was "
                                               "trained: retrain it, or restore the teacher"):
        load_students(distilled, "s")
    set_teacher_scores(distilled, scores[:, :-1], classes[:-1], keys=ids, overwrite=True)
    with pytest.raises(RunInputsChanged, match=r"changed \(added none, removed \['toothbrush'\]\)"):
        load_students(distilled, "s")
    set_teacher_scores(distilled, np.clip(scores + 0.01, 0, 1), classes, keys=ids, overwrite=True)
    with pytest.raises(RunInputsChanged, match="teacher scores in 'teacher' of the samples run 's' was trained on "
                                               "were changed since .by hand, by another tool, or by importing"):
        load_students(distilled, "s")

    teacher_from_file(distilled, TEACHER_FILE, overwrite=True)  # the very scores it learnt from
    restored = load_students(distilled, "s")
    assert restored.performance() == run.performance()


@pytest.mark.parametrize("change", ["order", "size"])
def test_a_recomputed_corpus_is_noticed(distilled, tiny_checkpoint, change):
    train_students(distilled, key="s", epochs=1, budget=None)
    names = list(load_corpus().names)
    corpus = names[::-1] if change == "order" else names[:50]
    compute_concepts(distilled, model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=corpus, overwrite=True)
    with pytest.raises(RunInputsChanged, match=f"concept corpus of 'concepts' changed since run 's' was trained "
                                               f"\\({len(corpus)} concepts now\\): retrain it"):
        load_students(distilled, "s")


def test_concepts_recomputed_with_other_settings_are_noticed(distilled, tiny_checkpoint):
    train_students(distilled, key="s", epochs=1, budget=None)
    compute_concepts(distilled, model=TINY_MODEL, pretrained=tiny_checkpoint, n_segments=4, overwrite=True)
    with pytest.raises(RunInputsChanged, match="recomputed with other settings"):
        load_students(distilled, "s")


# 3. A run forgets its samples -------------------------------------------------------------


def test_a_run_keeps_its_samples_in_the_sdk_and_the_tune_operator(distilled):
    subset = distilled.take(60, seed=1)
    run = train_students(subset, key="part", epochs=1, budget=None)
    loaded = load_students(distilled, "part")
    assert loaded.ids == run.ids and len(loaded.ids) == 60
    assert loaded.performance() == run.performance()
    tuned = execute("tune_students", distilled, key="part", up={"person": ["sky"]}, epochs=1)
    assert tuned["revision"] == 1
    entry = student_history(distilled, "part")[1]
    assert entry["metrics_before"] == run.performance()["summary"]  # the operator saw the run's 60 samples

    distilled.delete_samples(run.ids[:2])
    left = load_students(distilled, "part")
    assert left.ids == run.ids[2:] and left.samples_deleted == 2 and left.revision == 1


def test_tuned_revisions_stay_usable_as_the_dataset_shrinks_and_grows_evaluated_on_what_is_there(distilled,
                                                                                                 tmp_path):
    distilled.take(100, seed=3).tag_samples("train")
    run = train_students(distilled, key="s", epochs=1, budget=None, train_tag="train")
    run.tune(up={"person": ["sky"]}, epochs=1)
    gone = distilled.match_tags("train").first().id
    distilled.delete_samples(gone)  # a routine edit: one training sample removed

    left = load_students(distilled, "s")
    assert left.revision == 1 and left.samples_deleted == 1 and gone not in left.ids and len(left.ids) == 127
    assert int(left.data.train.sum()) == 99
    assert left.performance()["summary"] != student_history(distilled, "s")[1]["metrics_after"]  # measured anew
    assert left.facts()["samples_deleted"] == 1  # the panels' caveat: "1 of the samples ... were deleted since"
    assert export_students(distilled, tmp_path / "e", key="s", revision=1)["run"]["revision"] == 1
    assert left.revert(0)["revision"] == 2

    scores, classes = teacher_scores(distilled)
    distilled.add_samples([sample.copy() for sample in distilled.limit(5)])  # the week's new samples
    added_scores = np.concatenate([scores, scores[:5]])
    set_teacher_scores(distilled, added_scores, classes, keys=distilled.values("id"), overwrite=True)  # old unchanged
    grown = load_students(distilled, "s")
    assert grown.revision == 2 and grown.ids == left.ids and grown.tune(down={"person": ["sky"]}, epochs=1)

    sample = distilled[left.ids[3]]
    sample["teacher"] = np.clip(np.asarray(sample["teacher"]) + 0.05, 0, 1)  # still noticed after the deletion
    sample.save()
    with pytest.raises(RunInputsChanged, match="teacher scores in 'teacher' of the samples run 's' was trained on"):
        load_students(distilled, "s")


def test_a_sample_deleted_between_a_loads_two_reads_is_counted_as_deleted(distilled, monkeypatch):
    run = train_students(distilled.take(40, seed=2), key="race", epochs=1, budget=None)
    assert run.data.truth is not None  # its labels are a second read, after the vectors
    read_vectors = data._matrices

    def then_a_colleague_deletes_one(*args, **kwargs):
        matrices = read_vectors(*args, **kwargs)
        distilled.delete_samples(run.ids[:1])
        return matrices

    monkeypatch.setattr(data, "_matrices", then_a_colleague_deletes_one)
    left = load_students(distilled, "race")
    assert left.ids == run.ids[1:] and left.samples_deleted == 1


# 4. A deleted run comes back --------------------------------------------------------------


def test_a_run_deleted_by_a_colleague_is_not_revived_by_a_stale_tune(distilled):
    distilled.persistent = True
    mine = train_students(distilled, key="r", epochs=1, budget=None)
    run_python(_child(distilled, "delete_students(ds, 'r')\n"))
    with pytest.raises(StaleRunError, match="deleted, renamed or trained again by someone else"):
        mine.tune(up={"person": ["sky"]}, epochs=1)
    assert store.list_entries(distilled, mine.uid) == [] and list_student_runs(distilled) == []

    fresh = train_students(distilled, key="r", epochs=1, budget=None)  # same key, a new run
    assert fresh.revision == 0 and [e["kind"] for e in fresh.history] == ["train"]
    assert fresh.tune(up={"person": ["sky"]}, epochs=1)["revision"] == 1  # no false StaleRunError

    run_python(_child(distilled, "train_students(ds, key='r', epochs=1, budget=None, overwrite=True)\n"))
    with pytest.raises(StaleRunError, match="trained again"):
        fresh.tune(down={"person": ["sky"]}, epochs=1)
    with pytest.raises(StaleRunError, match="load it again"):
        fresh.reload()
    assert [e["kind"] for e in load_students(distilled, "r").history] == ["train"]


def test_a_kill_between_deleting_a_run_and_its_history_leaves_nothing_to_inherit(distilled):
    distilled.persistent = True
    old = train_students(distilled, key="r", epochs=1, budget=None)
    old.tune(up={"person": ["sky"]}, epochs=1)
    run_killed(_child(distilled, "delete_students(ds, 'r')\n"), "delete:run-deleted")
    assert "r" not in list_student_runs(distilled)
    assert len(store.list_entries(distilled, old.uid)) == 2  # orphaned by the kill

    new = train_students(distilled, key="r", epochs=1, budget=None)
    assert [e["kind"] for e in new.history] == ["train"] and new.revision == 0
    assert new.tune(up={"person": ["road"]}, epochs=1)["revision"] == 1
    store.purge_orphans(grace=store.timedelta(0))
    assert store.list_entries(distilled, old.uid) == []
    assert len(new.history) == 2


# 5. Rename loses the run ------------------------------------------------------------------


@pytest.mark.parametrize("new_key", ["a.b", "a b", "$x", "", "1st", None, "x" * 3 + "-y"])
def test_rename_refuses_keys_fiftyone_would_refuse_and_keeps_the_run(distilled, new_key):
    run = train_students(distilled, key="good", epochs=1, budget=None)
    run.tune(up={"person": ["sky"]}, epochs=1)
    before = snapshot(distilled)
    with pytest.raises(InficondError, match="A run key is a single word"):
        rename_students(distilled, "good", new_key)
    # the form refuses blanks
    with pytest.raises(Exception, match="A run key is a single word|new_key. Reason: Required"):
        execute("rename_students", distilled, key="good", new_key=new_key)
    assert snapshot(distilled) == before
    assert [e["kind"] for e in load_students(distilled, "good").history] == ["train", "tune"]


def test_a_renamed_run_keeps_its_history(distilled):
    run = train_students(distilled, key="good", epochs=1, budget=None)
    run.tune(up={"person": ["sky"]}, epochs=1)
    rename_students(distilled, "good", "better_v2")
    assert list_student_runs(distilled) == ["better_v2"]
    renamed = load_students(distilled, "better_v2")
    assert ([e["kind"] for e in renamed.history] == ["train", "tune"]
            and renamed.weight.tobytes() == run.weight.tobytes())
    assert renamed.tune(down={"person": ["sky"]}, epochs=1)["revision"] == 2


# 6. Overwrite loses history before validating ----------------------------------------------


def test_an_invalid_overwrite_keeps_the_old_run_and_its_history(distilled):
    run = train_students(distilled, key="b", epochs=1, budget=None)
    run.tune(up={"person": ["sky"]}, epochs=1)
    before = snapshot(distilled)
    with pytest.raises(InficondError, match="Field 'nope' of dataset .* holds no concepts"):
        train_students(distilled, key="b", overwrite=True, concepts_field="nope")
    assert snapshot(distilled) == before
    assert [e["kind"] for e in load_students(distilled, "b").history] == ["train", "tune"]


@pytest.mark.parametrize("point", ["train:fitting", "train:history-written"])
def test_a_kill_while_overwriting_keeps_the_old_run(distilled, point):
    distilled.persistent = True
    run = train_students(distilled, key="b", epochs=1, budget=None)
    run.tune(up={"person": ["sky"]}, epochs=1)
    run_killed(_child(distilled, "train_students(ds, key='b', overwrite=True, epochs=1, budget=None, seed=7)\n"), point)
    kept = load_students(distilled, "b")
    assert kept.uid == run.uid and [e["kind"] for e in kept.history] == ["train", "tune"]
    assert kept.weight.tobytes() == run.weight.tobytes()


def test_a_kill_after_overwriting_leaves_the_new_run_whole(distilled):
    distilled.persistent = True
    old = train_students(distilled, key="b", epochs=1, budget=None)
    old.tune(up={"person": ["sky"]}, epochs=1)
    run_killed(_child(distilled, "train_students(ds, key='b', overwrite=True, epochs=1, budget=None, seed=7)\n"),
               "train:run-registered")
    new = load_students(distilled, "b")
    assert new.uid != old.uid and [e["kind"] for e in new.history] == ["train"]
    store.purge_orphans(grace=store.timedelta(0))
    assert store.list_entries(distilled, old.uid) == []


def test_the_cache_of_a_streamed_training_killed_midway_is_removed_by_the_next_training(distilled, tmp_path):
    distilled.persistent = True
    code = f"train_students(ds, key='s', epochs=1, budget=None, streamed=True, cache_dir={str(tmp_path)!r})\n"
    run_killed(_child(distilled, code), "train:fitting")
    (left,) = os.listdir(tmp_path)  # the killed run's whole cache
    assert run_cache._writers().count_documents({"_id": left}) == 1
    kept = train_students(distilled, key="kept", epochs=1, budget=None, streamed=True, cache_dir=str(tmp_path))
    assert os.listdir(tmp_path) == [kept.uid]  # the next training's, on this machine, swept it
    assert run_cache._writers().count_documents({}) == 0
    assert load_students(distilled, "kept").revision == 0


def test_a_valid_overwrite_replaces_the_run_and_drops_its_old_history(distilled):
    old = train_students(distilled, key="b", epochs=1, budget=None)
    old.tune(up={"person": ["sky"]}, epochs=1)
    new = train_students(distilled, key="b", epochs=1, budget=None, seed=5, overwrite=True)
    assert new.uid != old.uid and store.list_entries(distilled, old.uid) == []
    assert [e["kind"] for e in load_students(distilled, "b").history] == ["train"]
    results = distilled.load_run_results("b", cache=False)
    assert results.uid == new.uid and results.weight.tobytes() == new.weight.tobytes()


def test_a_teacher_import_killed_midway_says_so_and_a_new_import_recovers(distilled):
    distilled.persistent = True
    train_students(distilled, key="s", epochs=1, budget=None)
    code = ("import fiftyone as fo\nfrom fiftyone_inficond.teacher import teacher_from_file\n"
            f"teacher_from_file(fo.load_dataset('{distilled.name}'), '{TEACHER_FILE}', overwrite=True)\n")
    run_killed(code, "teacher:run-recorded")
    message = "teacher scores in 'teacher' were not fully written .*: write them again with overwrite=True"
    with pytest.raises(InficondError, match=message):
        teacher_scores(distilled)
    with pytest.raises(RunInputsChanged, match=message):
        load_students(distilled, "s")
    teacher_from_file(distilled, TEACHER_FILE, overwrite=True)
    assert load_students(distilled, "s").revision == 0


# 7. Hangs and nonsense parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(epochs=-1), "Epochs must be a whole number from 1 to 1,000; got -1"),
        (dict(epochs=None), "Epochs must be a whole number from 1 to 1,000; got None"),
        (dict(epochs=1.5), "Epochs must be a whole number from 1 to 1,000; got 1.5"),
        (dict(epochs=0), "Epochs must be a whole number from 1 to 1,000; got 0"),
        (dict(epochs=True), "Epochs must be a whole number"),
        (dict(l1=-1), r"The L1 weight \(λ\) must be a number in \[0, 10\]; got -1"),
        (dict(l1=float("nan")), r"The L1 weight \(λ\) must be a number in \[0, 10\]; got nan"),
        (dict(lr=0), r"The learning rate must be a number in \(0, 10\]"),
        (dict(threshold=1), r"The decision threshold must be a number in \(0, 1\)"),
        (dict(batch_size=0), "The batch size must be a whole number from 1"),
        (dict(key=None), "A run key is a single word .* got None"),
        (dict(gt_field="filepath"), "Field 'filepath' does not hold labels"),
        (dict(train_tag="no-such-tag"), "The training split is empty"),
    ],
)
def test_nonsense_training_parameters_are_refused_before_any_write(distilled, params, message):
    before = snapshot(distilled)
    with pytest.raises(InficondError, match=message):
        train_students(distilled, **{"key": "s", "epochs": 1, **params})
    assert snapshot(distilled) == before


@pytest.mark.parametrize("streamed", [False, True])
def test_a_training_split_of_one_sample_is_refused_in_memory_and_streamed(distilled, streamed, tmp_path):
    distilled.take(1, seed=0).tag_samples("lonely")
    before = snapshot(distilled)
    with pytest.raises(InvalidRequest, match="The training split has 1 sample, too few to learn from: tag at least 10"):
        train_students(distilled, key="s", epochs=1, train_tag="lonely", streamed=streamed, cache_dir=str(tmp_path))
    assert snapshot(distilled) == before and not os.listdir(tmp_path)


def test_the_train_operator_refuses_a_negative_epoch_count(distilled):
    before = snapshot(distilled)
    with pytest.raises(Exception, match="Epochs must be a whole number from 1 to 1,000; got -1"):
        execute("train_students", distilled, key="s", epochs=-1)
    assert snapshot(distilled) == before


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(epochs=-1), "Retraining epochs must be a whole number from 1 to 1,000; got -1"),
        (dict(epochs=None), "Retraining epochs must be a whole number"),
        (dict(factor=float("inf")), r"The tuning factor must be a number in \(1, 100\]; got inf"),
        (dict(factor=1e40), r"The tuning factor must be a number in \(1, 100\]; got 1e\+40"),
        (dict(factor=1.0), r"The tuning factor must be a number in \(1, 100\]; got 1.0"),
        (dict(up=["car"]), r"Give the 👍 concepts as \{class: \[concepts\]\}"),
        (dict(up={"person": 3}), "Give the concepts to tune for 'person' as a list of names"),
        (dict(up={"person": ["moon"]}), "Concept 'moon' is not in the corpus of student run 's'"),
        (dict(up={"unicorn": ["sky"]}), "Class 'unicorn' is not a class of student run 's'"),
        (dict(up={}), "Nothing to tune"),
        (dict(up={"person": ["sky"]}, note="x" * 201), "A note is at most 200 characters; this one has 201"),
        (dict(up={"person": ["sky"]}, note=["why"]), "A note is text, like 'removed the cloud shortcut'"),
    ],
)
def test_nonsense_tuning_is_refused_and_nothing_saved(distilled, params, message):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    weight = run.weight.copy()
    with pytest.raises(InficondError, match=message):
        run.tune(**params)
    assert run.revision == 0 and run.newest_revision() == 0 and np.array_equal(run.weight, weight)


# 8. Contradictory instructions ------------------------------------------------------------


def test_one_concept_both_up_and_down_is_refused(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=None)  # every concept: any may be 👎'd
    with pytest.raises(InficondError, match="'sky' is both 👍 and 👎 for 'person': choose one direction"):
        run.tune(up={"person": ["sky", "road"]}, down={"person": ["sky"]})
    assert run.newest_revision() == 0
    entry = run.tune(up={"person": ["sky", "sky"]}, down={"car": ["sky"]}, epochs=1)  # other class: fine
    assert [(c["class"], c["concept"], c["direction"]) for c in entry["change"]] == [
        ("person", "sky", "up"), ("car", "sky", "down")]


# 9. Concept runs half-written -------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(template="{x}"), "must contain {} exactly once.*got '{x}'"),
        (dict(template="{0} {1}"), "must contain {} exactly once"),
        (dict(template="constant"), "must contain {} exactly once"),
        (dict(template="{{}}"), "must contain {} exactly once"),
        (dict(batch_size=0), "The batch size must be a whole number from 1 to 4,096; got 0"),
        (dict(field="a.b"), "The concepts field must be a single word"),
        (dict(corpus="abc"), "Corpus file 'abc' does not exist"),
        (dict(corpus=5), "A corpus is a list of concept names or a file path"),
    ],
)
def test_bad_concept_requests_write_nothing(coco_subset, tiny_checkpoint, params, message):
    arguments = {**dict(model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=["sky", "dog"]), **params}
    with pytest.raises(InficondError, match=message):
        compute_concepts(coco_subset, **arguments)
    assert_nothing_written(coco_subset._dataset, "concepts")


def test_overwriting_concepts_of_part_of_a_dataset_is_refused(coco128, tiny_checkpoint):
    compute_concepts(coco128.limit(30), model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=["sky", "dog"])
    before = snapshot(coco128)
    with pytest.raises(InficondError, match="also holds concepts of 20 samples outside this view, which "
                                            "overwriting would delete: run it on the whole dataset"):
        compute_concepts(coco128.limit(10), model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=["sky", "car"],
                         overwrite=True)
    assert snapshot(coco128) == before and coco128.exists("concepts").count() == 30


# 10. Leftovers and exports ----------------------------------------------------------------


def test_a_deleted_datasets_history_is_purged(distilled_base):
    dataset = distilled_base.clone(unique_name())
    run = train_students(dataset, key="s", epochs=1, budget=None)
    dataset_id = fiftyone_api.dataset_id(dataset)
    dataset.delete()
    assert store._history().count_documents({"dataset_id": dataset_id}) == 1
    store.purge_orphans()  # no grace for a dataset that is gone
    assert store._history().count_documents({"dataset_id": dataset_id}) == 0 and run.uid


def test_an_exported_and_imported_dataset_and_a_clone_each_tune_their_run_on_their_own_copy_of_its_history(
        distilled, tmp_path):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    run.tune(up={"person": ["sky"]}, epochs=1)
    distilled.export(export_dir=str(tmp_path / "export"), dataset_type=fo.types.FiftyOneDataset, export_media=False)
    imported = fo.Dataset.from_dir(str(tmp_path / "export"), dataset_type=fo.types.FiftyOneDataset, name=unique_name())
    clone = distilled.clone(unique_name())
    try:
        for copy in (imported, clone):
            assert list_student_runs(copy) == ["s"]
            mine = load_students(copy, "s")
            assert mine.revision == 1 and mine.weight.tobytes() == run.weight.tobytes()
            assert mine.tune(down={"person": ["sky"]}, epochs=1)["revision"] == 2
            assert copy.load_run_results("s", cache=False).revision == 2
        assert [e["kind"] for e in load_students(distilled, "s").history] == ["train", "tune"]
        delete_students(clone, "s")
        assert load_students(imported, "s").revision == 2 and load_students(distilled, "s").revision == 1
    finally:
        imported.delete()
        clone.delete()


def test_a_copy_of_a_run_without_all_of_its_samples_is_refused_with_what_to_do(distilled):
    train_students(distilled, key="s", epochs=1, budget=None)
    part = distilled.clone(unique_name())
    part.delete_samples(part.skip(100))  # before its first use of the run
    try:
        with pytest.raises(RunInputsChanged, match="'s' came with this dataset from another, but 28 of its 128 "
                                                   "samples did not: train it again here"):
            load_students(part, "s")
    finally:
        part.delete()


# 11. After an unclean database restart -----------------------------------------------------


@pytest.fixture
def own_mongod(tmp_path):
    """A MongoDB server of our own (FiftyOne's mongod) that a test may SIGKILL and restart."""
    import socket

    import pymongo
    from fiftyone.core.service import DatabaseService

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    servers = []

    def start():
        command = [DatabaseService.find_mongod(), "--dbpath", str(tmp_path), "--port", str(port),
                   "--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", str(tmp_path / "mongod.log")]
        servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        pymongo.MongoClient(port=port, serverSelectionTimeoutMS=30000).admin.command("ping")

    def kill():
        servers[-1].kill()  # SIGKILL: no clean shutdown, no checkpoint
        servers[-1].wait()

    start()
    yield f"mongodb://127.0.0.1:{port}", start, kill
    for server in servers:
        server.kill()
        server.wait()


def test_an_unclean_database_restart_does_not_empty_the_view(own_mongod, coco128_dir):
    uri, start, kill = own_mongod
    env = {**os.environ, "FIFTYONE_DATABASE_URI": uri}

    def child(code):
        done = subprocess.run([sys.executable, "-c", "import fiftyone as fo\n" + code],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    child("import glob\n"
          "ds = fo.Dataset('restarted', persistent=True)\n"
          f"ds.add_samples([fo.Sample(filepath=p) for p in sorted(glob.glob('{coco128_dir}/images/*'))[:40]])\n"
          "print(len(ds))\n")
    kill()
    start()
    out = child("from fiftyone_inficond.extraction import compute_concepts\n"
                "ds = fo.load_dataset('restarted')\n"
                f"result = compute_concepts(ds, model='{TINY_MODEL}', corpus=['sky', 'dog'], batch_size=40)\n"
                "print(len(ds), result.computed, ds.count('concepts'))\n")
    estimate, computed, stored = map(int, out.split())
    assert (computed, stored) == (40, 40)
    assert estimate in (0, 40)  # MongoDB's estimate after the kill (0 on these machines); counted, never trusted


# 12. Untrusted strings --------------------------------------------------------------------


def test_untrusted_strings_are_refused_in_the_users_words(distilled, coco_subset, tmp_path):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    with pytest.raises(InficondError, match=r"The revision to restore must be a whole number .*got \{'\$gt': 0\}"):
        run.revert({"$gt": 0})
    with pytest.raises(UnknownName, match="has no revision 7: pick one from its history"):
        run.revert(7)
    assert run.newest_revision() == 0

    scores = np.full((12, 3), 0.5)
    with pytest.raises(InficondError, match="Give the teacher's classes as a list of names"):
        set_teacher_scores(coco_subset, scores, "abc")
    ids = coco_subset.values("id")
    with pytest.raises(InficondError, match=f"Teacher rows 0 and 11 both belong to id '{ids[0]}'"):
        set_teacher_scores(coco_subset, np.full((12, 1), 0.5), ["a"], keys=ids[:11] + ids[:1])
    with pytest.raises(InficondError, match="Teacher scores must be a matrix of numbers"):
        set_teacher_scores(coco_subset, [[0.5], ["x", 1]] * 6, ["a"])
    binary = tmp_path / "corpus.txt"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(InficondError, match="is not UTF-8 text: give one concept name per line"):
        compute_concepts(coco_subset, model=TINY_MODEL, corpus=str(binary))
    assert_nothing_written(coco_subset._dataset, "teacher")
    assert_nothing_written(coco_subset._dataset, "concepts")


def test_nonsense_reads_are_refused_in_the_users_words(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    reads = [
        (lambda: run.top_concepts("person", n=0),
         "The number of concepts to show must be a whole number of at least 1"),
        (lambda: run.top_concepts("person", sign="up"), "Rank weights by sign 'positive', 'negative' or 'absolute'"),
        (lambda: run.top_concepts("person", by="Q"), "Rank concepts by 'weight', 'positives' or 'negatives'"),
        (lambda: run.what_if("person", n_values=1), "The number of what-if values must be a whole number from 2"),
        (lambda: run.performance(sort_by="speed"), "Sort by one of"),
        (lambda: run.performance(split="test"), "split must be one of"),
        (lambda: run.agreement(3), "Class '3' is not a class of student run 's'"),
    ]
    for read, message in reads:
        with pytest.raises(InficondError, match=message):
            read()
