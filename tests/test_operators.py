"""Every operator through execute_operator, and delegated concept extraction run by FiftyOne's
own orchestrator (`fiftyone delegated launch`) in separate worker processes."""

import os
import signal
import subprocess
import sys
import time

import fiftyone.operators as foo
import fiftyone.operators.delegated as food
import numpy as np
import pytest
from bson import ObjectId
from conftest import COCO128, TINY_MODEL, assert_nothing_written

from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.students.registry import list_student_runs, load_students
from fiftyone_inficond.teacher import teacher_scores

PLUGIN = "@inficond/inficond"
CORPUS = ["person", "dog", "car", "sky", "grass", "wood", "red", "striped"]


def execute(name, samples, **params):
    return foo.execute_operator(f"{PLUGIN}/{name}", ctx=dict(view=samples.view(), params=params)).result


def queue(name, samples, **params):
    ctx = dict(view=samples.view(), params=params)
    return foo.execute_operator(f"{PLUGIN}/{name}", ctx=ctx, request_delegation=True)


def _concept_params(checkpoint, **extra):
    return dict(model=TINY_MODEL, pretrained=checkpoint, corpus_source="list", corpus=CORPUS, batch_size=8, **extra)


def test_concepts_and_teacher_operators(coco_subset, tiny_checkpoint, coco128_dir):
    result = execute("compute_concepts", coco_subset, **_concept_params(tiny_checkpoint))
    assert result == {"computed": 12, "already_done": 0, "failed": {}, "message": "Concept vectors of 12 samples "
                      "written to **concepts**. Next: import teacher scores, then train students"}
    assert np.stack(coco_subset.values("concepts")).shape == (12, len(CORPUS))
    assert execute("compute_concepts", coco_subset, **_concept_params(tiny_checkpoint))["already_done"] == 12

    path = os.path.join(coco128_dir, "teacher_yolox_nano.json")
    assert execute("import_teacher_scores", coco_subset, source="file", path=path)["written"] == 12
    assert teacher_scores(coco_subset)[0].shape == (12, 80)
    execute("import_teacher_scores", coco_subset, source="labels", label_field="ground_truth", field="gt_teacher")
    assert coco_subset._dataset.get_run_info("gt_teacher").config.source == "labels:ground_truth"
    execute("import_teacher_scores", coco_subset, source="clip", classes=["person", "dog"], model=TINY_MODEL,
            pretrained=tiny_checkpoint, field="clip_teacher")
    assert teacher_scores(coco_subset, "clip_teacher")[1] == ["person", "dog"]


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("compute_concepts", dict(model="ViT-Nope"), "'ViT-Nope' is not one of open_clip's models"),
        ("compute_concepts", dict(model=TINY_MODEL, corpus_source="list", corpus=[" "]), "corpus is empty"),
        ("import_teacher_scores", dict(source="file", path=os.path.join(COCO128, "nowhere.json")),
         "There is no file .*nowhere.json' on the server: choose an existing teacher score file"),
        ("import_teacher_scores", dict(source="file", path="/etc/passwd"), "outside the folders this App may read"),
        ("compute_concepts", dict(corpus_source="file", corpus_path="/etc/passwd"),
         "outside the folders this App may read"),
        ("import_teacher_scores", dict(source="labels", label_field="nope"), "has no field 'nope'"),
    ],
)
def test_bad_inputs_give_the_library_message_and_write_nothing(coco_subset, name, params, message):
    with pytest.raises(Exception, match=message):
        execute(name, coco_subset, **params)
    for field in ("concepts", "teacher"):
        assert_nothing_written(coco_subset._dataset, field)


def test_student_operators(coco128, tiny_checkpoint, coco128_dir):
    compute_concepts(coco128, model=TINY_MODEL, pretrained=tiny_checkpoint, batch_size=32)
    execute("import_teacher_scores", coco128, source="file", path=os.path.join(coco128_dir, "teacher_yolox_nano.json"))

    trained = execute("train_students", coco128, key="s", epochs=3)
    assert trained["key"] == "s" and trained["revision"] == 0 and 0 < trained["summary"]["agreement_ap"] <= 1
    from fiftyone_inficond.students.registry import load_students

    dog_uses, person_uses = (load_students(coco128, "s").uses(c)[0][0] for c in ("dog", "person"))  # used: 👎-able
    tuned = execute("tune_students", coco128, key="s", up={"person": ["sky"]}, down={"dog": [dog_uses]}, factor=2.0)
    assert tuned["revision"] == 1 and {c["direction"] for c in tuned["change"]} == {"up", "down"}
    # the Fine-tune button's answer: on the split the panels show first (all samples: none is held out)
    assert tuned["message"].startswith("✅ Revision 1 saved (all samples) · ")
    assert "person: student AP" in tuned["message"]
    assert "👍 *sky* for person: " in tuned["message"] and f"👎 *{dog_uses}* for dog: " in tuned["message"]
    form = execute("tune_students", coco128, key="s", erase=True, **{"class": "person", "down_concepts": [person_uses]})
    assert [entry.get("erase") for entry in load_students(coco128, "s").history[1:]] == [False, True]
    assert form["change"][0] == {**form["change"][0], "class": "person", "concept": person_uses, "direction": "down"}
    reverted = execute("revert_students", coco128, key="s", revision=1)
    assert (reverted["revision"], reverted["reverted_to"]) == (3, 1)
    assert reverted["message"].startswith("Revision **3** saved: weights of revision 1 restored")
    listed = execute("list_student_runs", coco128)
    assert [e["kind"] for e in listed["runs"]["s"]] == ["train", "tune", "tune", "revert"]
    assert listed["message"].startswith("- **s**: revision 3, 4 entries")
    assert not foo.get_operator(f"{PLUGIN}/list_student_runs").config.dynamic  # the App shows a button
    with pytest.raises(Exception, match="Concept 'moon' is not in the corpus"):
        execute("tune_students", coco128, key="s", up={"person": ["moon"]})
    assert len(load_students(coco128, "s").history) == 4

    execute("rename_students", coco128, key="s", new_key="renamed")
    assert list_student_runs(coco128) == ["renamed"] and len(load_students(coco128, "renamed").history) == 4
    execute("delete_students", coco128, key="renamed")
    assert list_student_runs(coco128) == []


def test_concept_view_operators(coco128, tiny_checkpoint, coco128_dir):
    compute_concepts(coco128, model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=CORPUS, batch_size=32)
    execute("import_teacher_scores", coco128, source="file", path=os.path.join(coco128_dir, "teacher_yolox_nano.json"))
    execute("train_students", coco128, key="s", epochs=2)

    shown = execute("show_concept_samples", coco128, key="s", concept="sky", split="all", n=10)
    column = CORPUS.index("sky")
    presence = dict(zip(*coco128.values(["id", "concepts"])))
    expected = sorted(presence, key=lambda i: -presence[i][column])[:10]
    assert [presence[i][column] for i in shown["sample_ids"]] == [presence[i][column] for i in expected]
    assert shown["message"].startswith("The 10 of the 128 samples where 'sky' is most present")
    assert sorted(coco128.exists("concepts_overlay").values("id")) == sorted(shown["sample_ids"])

    drawn = execute("show_concept_overlay", coco128.limit(5), field="concepts", concept="dog")
    assert (drawn["samples"], drawn["cleared"]) == (
        5, len(set(shown["sample_ids"]) - set(coco128.limit(5).values("id"))))
    assert set(coco128.values("concepts_overlay.concept")) == {"dog", None}

    found = execute("search_concepts", coco128, field="concepts", phrase="a puppy", n=3)
    assert len(found["concepts"]) == 3 and found["message"].startswith("Nearest to 'a puppy':")
    added = execute("add_concepts", coco128, field="concepts", names=["cat"])
    assert added["added"] == ["cat"] and added["concepts"] == len(CORPUS) + 1 and added["samples"] == len(coco128)
    extended = execute("extend_students", coco128, key="s", new_key="s2")
    assert extended["extends"] == {"key": "s", "revision": 0, "added": ["cat"]}
    assert load_students(coco128, "s2").concepts == CORPUS + ["cat"]
    with pytest.raises(Exception, match="Path: concept. Reason: Invalid enum value"):  # the form's choices
        execute("show_concept_overlay", coco128, field="concepts", concept="moon")
    assert set(coco128.values("concepts_overlay.concept")) == {"dog", None}  # nothing written


# --- delegated execution by real, separate worker processes ----------------------------


WORKER_LOGS = os.path.join(os.path.dirname(__file__), "artifacts", "workers")


def _start_worker():
    """A delegated-operations worker, its output kept in tests/artifacts/workers/ (a test that
    waits on it in vain says why from there)."""
    fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    os.makedirs(WORKER_LOGS, exist_ok=True)
    with open(os.path.join(WORKER_LOGS, f"worker-{time.time_ns()}.log"), "w") as log:
        return subprocess.Popen(
            [fiftyone_cli, "delegated", "launch"],
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so it ends with all its children
        )


def _stop(worker):
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def _operation(op_id):
    return food.DelegatedOperationService().get(ObjectId(op_id))


def _wait_for(condition, timeout=240, interval=0.2, operations=()):
    """Until ``condition()``; refused at once when one of ``operations`` (ids) failed, and on the
    timeout with each one's state."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        failed = [op for op in map(_operation, operations) if op.run_state == "failed"]
        assert not failed, [op.result.error if op.result else None for op in failed]
        time.sleep(interval)
    states = {str(i): _operation(i).run_state for i in operations}
    raise TimeoutError(f"condition not met in time; operations {states}; worker logs in {WORKER_LOGS}")


def test_shards_run_by_two_workers_equal_one_direct_run(coco128, coco128_base, tiny_checkpoint):
    queued = execute("compute_concepts", coco128, **_concept_params(tiny_checkpoint, num_shards=3))["queued"]
    assert len(queued) == 3 and coco128.exists("concepts").count() == 0
    workers = [_start_worker(), _start_worker()]
    try:
        _wait_for(lambda: all(_operation(i).run_state == "completed" for i in queued), operations=queued)
    finally:
        for worker in workers:
            _stop(worker)
    results = [_operation(i).result.result for i in queued]
    assert sum(r["computed"] for r in results) == 128  # each sample computed exactly once
    assert all(r["already_done"] == 0 for r in results)

    direct = coco128_base.clone()
    try:
        compute_concepts(direct, **{k: v for k, v in _concept_params(tiny_checkpoint).items() if k != "corpus_source"})
        by_path = dict(zip(direct.values("filepath"), direct.values("concepts")))
        for path, vector in zip(coco128.values("filepath"), coco128.values("concepts")):
            np.testing.assert_allclose(vector, by_path[path], atol=1e-5)
    finally:
        direct.delete()


def test_more_shards_than_samples_are_refused_and_queue_nothing(coco_subset, tiny_checkpoint):
    delegated = food.DelegatedOperationService()
    before = len(delegated.list_operations())
    params = _concept_params(tiny_checkpoint, num_shards=10**6)
    refusal = "The number of shards for these 12 samples must be a whole number from 1 to 12; got 1000000"
    with pytest.raises(Exception, match=refusal):
        execute("compute_concepts", coco_subset, **params)
    assert len(delegated.list_operations()) == before and coco_subset.exists("concepts").count() == 0


def test_a_killed_worker_loses_nothing_and_the_rerun_computes_nothing_twice(coco128):
    params = dict(model="ViT-B-32", corpus_source="list", corpus=CORPUS, batch_size=4)
    operation = queue("compute_concepts", coco128, **params).result["id"]
    worker = _start_worker()
    try:
        _wait_for(lambda: coco128.exists("concepts").count() >= 12, interval=0.1)
    finally:
        _stop(worker)
    done = coco128.exists("concepts")
    before = dict(zip(*done.values(["id", "last_modified_at"])))
    assert 12 <= len(before) < 128
    assert coco128.exists("concepts_segments").count() >= len(before)  # no vector without its segments

    fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    subprocess.run([fiftyone_cli, "delegated", "fail", str(operation)], check=True, capture_output=True)
    subprocess.run([fiftyone_cli, "delegated", "rerun", str(operation)], check=True, capture_output=True)
    rerun = [op.id for op in food.DelegatedOperationService().list_operations(dataset_name=coco128.name)
             if op.run_state == "queued"]
    assert len(rerun) == 1
    worker = _start_worker()
    try:
        _wait_for(lambda: _operation(rerun[0]).run_state == "completed", operations=rerun)
    finally:
        _stop(worker)
    result = _operation(rerun[0]).result.result
    assert result["already_done"] == len(before) and result["computed"] == 128 - len(before)
    assert coco128.exists("concepts").count() == 128
    after = dict(zip(*coco128.exists("concepts").values(["id", "last_modified_at"])))
    assert all(after[i] == t for i, t in before.items())  # samples done before the kill untouched
