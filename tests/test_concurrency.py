"""Two real clients of one database changing the same thing at the same moment: one wins, the
other is told, and nothing is lost or mixed."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY_MODEL

from fiftyone_inficond import fiftyone_api, leases
from fiftyone_inficond.errors import InficondError, StaleRunError
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.new_concepts import add_concepts
from fiftyone_inficond.runs import run_config
from fiftyone_inficond.students.registry import load_students, rename_students, student_history, train_students

ROUNDS = 3

# A client that says "ready" once loaded, then, for each line "<round> <start time>" it is sent,
# trains run k<round> at that moment and says whether it won or was refused.
TRAIN_AT_THE_SAME_MOMENT = """
import json, sys, time
import fiftyone as fo
from fiftyone_inficond.errors import InficondError
from fiftyone_inficond.students.registry import train_students

dataset = fo.load_dataset(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    r, start = int(line.split()[0]), float(line.split()[1])
    time.sleep(max(0.0, start - time.time()))
    try:
        answer = {"round": r, "won": train_students(dataset, key=f"k{r}", epochs=1, budget=None).uid}
    except InficondError as error:
        answer = {"round": r, "refused": str(error)}
    print(json.dumps(answer), flush=True)
"""


def _start_together(code, *args, count=2):
    return [subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
            for _ in range(count)]


def _next_line(process, starts):
    """The client's next line that starts with ``starts`` (libraries may print other lines)."""
    for line in process.stdout:
        if line.startswith(starts):
            return line
    raise AssertionError(f"the client ended: {process.stderr.read()}")


def _in_step(processes, rounds):
    """Each round started in every client at one moment, once all have answered the last:
    their answers, parsed."""
    for process in processes:
        _next_line(process, "ready")
    answers = []
    for r in range(rounds):
        start = time.time() + 0.5
        for process in processes:
            process.stdin.write(f"{r} {start}\n")
            process.stdin.flush()
        answers += [json.loads(_next_line(process, "{")) for process in processes]
    for process in processes:
        process.stdin.close()
        assert process.wait(timeout=60) == 0, process.stderr.read()
    return answers


def test_two_clients_creating_one_run_key_at_the_same_moment_leave_exactly_one_run(distilled):
    answers = _in_step(_start_together(TRAIN_AT_THE_SAME_MOMENT, distilled.name), ROUNDS)
    runs = fiftyone_api.database()[fiftyone_api.RUNS_COLLECTION]
    for r in range(ROUNDS):
        key = f"k{r}"
        (winner,) = [a["won"] for a in answers if a["round"] == r and "won" in a]
        (refusal,) = [a["refused"] for a in answers if a["round"] == r and "refused" in a]
        assert f"student run '{key}'" in refusal and ("right now" in refusal or "already exists" in refusal)
        assert runs.count_documents({"_dataset_id": fiftyone_api.dataset_id(distilled), "key": key}) == 1
        assert load_students(distilled, key).uid == winner and len(student_history(distilled, key)) == 1


def test_a_key_being_created_is_refused_to_a_second_trainer_and_a_renamer_and_free_again_after(distilled):
    with leases.exclusive(distilled, "students/taken"):  # a colleague's training, between check and save
        with pytest.raises(StaleRunError, match="is training or renaming a student run 'taken' right now"):
            train_students(distilled, key="taken", epochs=1, budget=None)
        train_students(distilled, key="other", epochs=1, budget=None)
        with pytest.raises(StaleRunError, match="right now"):
            rename_students(distilled, "other", "taken")
    assert fiftyone_api.run_keys(distilled, "inficond_students") == ["other"]
    rename_students(distilled, "other", "taken")
    assert load_students(distilled, "taken").key == "taken"


EXTRACT = """
import sys
import fiftyone as fo
from fiftyone_inficond.errors import InficondError
from fiftyone_inficond.extraction import compute_concepts

dataset = fo.load_dataset(sys.argv[1])
try:
    result = compute_concepts(dataset, model=sys.argv[2], pretrained=sys.argv[3], corpus=sys.argv[4].split(","),
                              field="c", batch_size=2, progress=False)
    print("computed", result.computed)
except InficondError as error:
    print("refused", error)
"""


def _widths(dataset, field):
    return {len(v) for v in dataset.exists(field).values(field)}


def test_concepts_added_while_another_client_extracts_are_refused_and_widths_never_mix(coco128, tiny_checkpoint):
    corpus = ["dog", "person", "sky"]
    compute_concepts(coco128.limit(4), model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=corpus, field="c")
    (process,) = _start_together(EXTRACT, coco128.name, TINY_MODEL, tiny_checkpoint, ",".join(corpus), count=1)
    deadline = time.time() + 300
    while coco128.exists("c").count() <= 6 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    with pytest.raises(InficondError, match="Concepts are being computed into 'c'.*once that finishes"):
        add_concepts(coco128, ["wing"], field="c")
    out, err = process.communicate(timeout=600)
    assert out.splitlines()[-1] == f"computed {len(coco128) - 4}", out + err
    assert _widths(coco128, "c") == {3} and run_config(coco128, "c", "inficond_concepts").get("complete") is not False
    add_concepts(coco128, ["wing"], field="c")  # free once it finished
    assert _widths(coco128, "c") == {4} and coco128.exists("c").count() == len(coco128)


def test_an_extraction_started_while_concepts_are_added_is_refused_and_writes_nothing(coco128, tiny_checkpoint):
    compute_concepts(coco128.limit(4), model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=["dog", "sky"], field="c")
    before = np.stack(coco128.limit(4).values("c"))
    with leases.exclusive(coco128, "concepts/c"):  # a colleague's addition, under way
        with pytest.raises(InficondError, match="Concepts are being added to 'c'.*once that finishes"):
            compute_concepts(coco128, model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=["dog", "sky"], field="c")
    assert coco128.exists("c").count() == 4 and np.array_equal(np.stack(coco128.limit(4).values("c")), before)


PURGE = """
from fiftyone_inficond.students import store
store.purge_orphans()
"""


def _wait_until_stopped(process, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read()
        with open(f"/proc/{process.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.05)
    raise AssertionError("the purging client never reached its pause point")


def test_a_colleagues_dataset_created_and_trained_during_a_purge_keeps_its_history(distilled):
    env = {**os.environ, "INFICOND_PAUSEPOINT": "purge:listed"}
    purger = subprocess.Popen([sys.executable, "-c", PURGE], env=env, stderr=subprocess.PIPE, text=True)
    colleague = None
    try:
        _wait_until_stopped(purger)  # between its reads of the history and of the datasets
        colleague = distilled.clone(f"{distilled.name}-colleague", persistent=True)
        train_students(colleague, key="theirs", epochs=1, budget=None)
        purger.send_signal(signal.SIGCONT)
        assert purger.wait(timeout=60) == 0, purger.stderr.read()
        assert len(student_history(colleague, "theirs")) == 1
        assert load_students(colleague, "theirs").revision == 0
    finally:
        purger.kill()
        if colleague is not None:
            colleague.delete()
