"""Student runs through FiftyOne's own run calls: a readable record, the run from its results, its
samples from its view, and nothing of it left behind by delete_run, rename_run or dataset.delete()."""

import os

import pytest
from conftest import unique_name

from fiftyone_inficond import UnknownName, load_students, train_students
from fiftyone_inficond.students import store
from fiftyone_inficond.students.fiftyone_run import StudentsRunConfig


def _history(dataset, uid):
    return store._history().count_documents({"dataset_id": dataset._doc.id, "run_uid": uid})


def _results_files(dataset):
    """GridFS files of the dataset's run results."""
    return sum(1 for doc in dataset._doc.runs.values() if doc.results)


def test_the_record_prints_in_under_2_kb_with_broden_and_80_classes(distilled):
    run = train_students(distilled, key="s", epochs=1)  # budget "auto": its path is kept too
    info = distilled.get_run_info("s")
    assert isinstance(info.config, StudentsRunConfig) and len(str(info)) < 2048, len(str(info))
    assert (info.config.n_classes, info.config.n_concepts, info.config.n_samples) == (80, 1153, 128)
    assert len(run.config["budget_path"]["budgets"]) > 1 and len(run.config["concept_mean"]) == 1153


def test_the_run_view_is_the_samples_it_was_trained_on(distilled):
    view = distilled.take(24, seed=1)
    run = train_students(view, key="s", epochs=1, budget=8)
    assert sorted(distilled.load_run_view("s").values("id")) == sorted(run.ids) == sorted(view.values("id"))
    again = train_students(distilled.skip(100), key="s", epochs=1, budget=8, overwrite=True)
    assert sorted(distilled.load_run_view("s").values("id")) == sorted(again.ids) and len(again.ids) == 28


def test_the_results_answer_as_the_run_at_its_newest_revision(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=8)
    run.tune(down={"person": [run.top_concepts("person", 1)[0][0]]}, epochs=1)
    results = distilled.load_run_results("s", cache=False)
    assert results.run.revision == 1 and results.weight.tobytes() == run.weight.tobytes()
    assert repr(results).startswith("<StudentRun 's' of dataset") and "revision 1" in repr(results)


def test_fiftyones_delete_run_takes_the_history_and_the_disk_cache_with_the_run(distilled, tmp_path):
    run = train_students(distilled, key="s", epochs=1, budget=8, streamed=True, cache_dir=str(tmp_path))
    run.tune(down={"person": [run.top_concepts("person", 1)[0][0]]}, epochs=1)
    assert _history(distilled, run.uid) == 2 and os.path.isdir(run.config["cache"])
    distilled.delete_run("s")
    assert "s" not in distilled.list_runs() and _results_files(distilled) == 0
    assert _history(distilled, run.uid) == 0 and not os.path.exists(run.config["cache"])


def test_fiftyones_rename_run_keeps_the_history_under_the_new_key(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=8)
    run.tune(down={"person": [run.top_concepts("person", 1)[0][0]]}, epochs=1)
    distilled.rename_run("s", "t")
    assert [e["kind"] for e in load_students(distilled, "t").history] == ["train", "tune"]
    with pytest.raises(UnknownName):
        load_students(distilled, "s")


def test_a_deleted_datasets_runs_leave_nothing_once_the_next_run_is_trained(distilled_base, distilled, tmp_path):
    dataset = distilled_base.clone(unique_name())
    run = train_students(dataset, key="s", epochs=1, budget=8, streamed=True, cache_dir=str(tmp_path / "gone"))
    dataset.delete()
    train_students(distilled, key="next", epochs=1, budget=8)  # any train or delete purges what nothing reaches
    assert store._history().count_documents({"run_uid": run.uid}) == 0 and not os.path.exists(run.config["cache"])


def test_deleting_a_clones_run_leaves_the_originals_cache_and_history(distilled, tmp_path):
    run = train_students(distilled, key="s", epochs=1, budget=8, streamed=True, cache_dir=str(tmp_path))
    clone = distilled.clone(unique_name())
    try:
        assert load_students(clone, "s").revision == 0  # its own copy of the history
        clone.delete_run("s")
        assert os.path.isdir(run.config["cache"]) and load_students(distilled, "s").revision == 0
    finally:
        clone.delete()


def test_a_clone_whose_first_copy_of_the_history_stopped_midway_gets_all_of_it(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=8)
    run.tune(down={"person": [run.top_concepts("person", 1)[0][0]]}, epochs=1)
    clone = distilled.clone(unique_name())
    try:
        first = store._history().find_one({"dataset_id": distilled._doc.id, "run_uid": run.uid, "revision": 0})
        del first["_id"]
        store._history().insert_one({**first, "dataset_id": clone._doc.id})  # an adopter killed after one copy
        store.adopt_history(clone, run.uid, distilled._doc.id)
        assert _history(clone, run.uid) == 2 and load_students(clone, "s").revision == 1
    finally:
        clone.delete()
