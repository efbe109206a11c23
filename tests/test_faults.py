"""Faults survived (issue 16): the database restarting mid-write, a full disk or a refused write
under a cache being written, an image the process may not read. Each operation fails clearly (or
skips and reports), leaves nothing half-written, and a re-run completes with nothing lost or
twice. (A delegated worker killed mid-extraction: tests/test_operators.py; a client killed at
every crash point: tests/test_integrity.py.)

The database restarts are of a MongoDB server of the test's own (FiftyOne's mongod binary on a
free port, its own data directory), never of the database the other tests share; the code under
test runs in child processes pointed at it with ``FIFTYONE_DATABASE_URI``.
"""

import errno
import itertools
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_MODEL
from test_integrity import own_mongod  # the fixture: a mongod of our own
from test_streaming import small  # the fixture: 300 synthetic samples

from fiftyone_inficond import images
from fiftyone_inficond.errors import WriteFailed
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.students import cache as streaming_cache

__all__ = ["own_mongod", "small"]  # fixtures this module uses from others

SERVER_WAIT_MS = 2000  # how long a child waits for a stopped database before it fails


def children(uri):
    """Runs Python code in a child process on the database at ``uri``; ``(returncode, stdout, stderr)``."""
    env = {**os.environ, "FIFTYONE_DATABASE_URI": f"{uri}/?serverSelectionTimeoutMS={SERVER_WAIT_MS}"}

    def child(code):
        prelude = "import fiftyone as fo\nfo.config.show_progress_bars = False\n"
        done = subprocess.run([sys.executable, "-c", prelude + code],
                              capture_output=True, text=True, timeout=240, env=env)
        shown = [line[len("RESULT "):] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        return done.returncode, shown, done.stderr

    return child


def server_pid(uri):
    import psutil

    port = int(uri.rsplit(":", 1)[1])
    return next(c.pid for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port)


def stop_database_after(function, calls, pid):
    """Child code: the database server ``pid`` is SIGKILLed once ``function`` (a module attribute,
    ``module.name``) returned ``calls`` times, as if it crashed right after a write."""
    module, name = function.rsplit(".", 1)
    return (
        f"import os, signal, {module} as target\n"
        f"original, calls = target.{name}, []\n"
        "def stopping(*args, **kwargs):\n"
        "    result = original(*args, **kwargs)\n"
        "    calls.append(1)\n"
        f"    if len(calls) == {calls}:\n"
        f"        os.kill({pid}, signal.SIGKILL)\n"
        "    return result\n"
        f"target.{name} = stopping\n"
    )


def test_a_database_restart_mid_extraction_fails_clearly_and_a_rerun_completes_once(
        own_mongod, coco128_dir, tiny_checkpoint):
    uri, start, kill = own_mongod
    child = children(uri)
    compute = (f"from fiftyone_inficond.extraction import compute_concepts\n"
               f"ds = fo.load_dataset('faults')\n"
               f"result = compute_concepts(ds, model='{TINY_MODEL}', pretrained='{tiny_checkpoint}', "
               f"corpus=['sky', 'dog', 'person'], batch_size=10)\n")
    setup = ("import glob\n"
             "ds = fo.Dataset('faults', persistent=True)\n"
             f"ds.add_samples([fo.Sample(filepath=p) for p in sorted(glob.glob('{coco128_dir}/images/*'))[:30]])\n")

    # The server dies right after the second of three batches was written.
    code, _, err = child(setup + stop_database_after("fiftyone_inficond.extraction._write_batch", 2, server_pid(uri))
                         + compute)
    assert code == 1
    assert ("DatabaseUnavailable: The database stopped answering while concepts were written to 'concepts': "
            "the 20 samples written so far are kept; run compute_concepts again once it is back to compute "
            "the other 10") in err, err[-2000:]
    kill()  # reaps the killed server
    start()

    code, out, err = child(
        compute
        + "print('RESULT', result.already_done, result.computed, len(result.failed))\n"
        "print('RESULT', ds.count('id'), len(set(ds.values('filepath'))), ds.count('concepts'), "
        "ds.count('concepts_segments'))\n"
        "from fiftyone_inficond.runs import require_run, CONCEPTS_METHOD\n"
        "require_run(ds, 'concepts', CONCEPTS_METHOD, 'concepts')\n"  # the run says it is complete
        "import numpy as np\n"
        "clean = fo.Dataset('clean')\n"
        "clean.add_samples([fo.Sample(filepath=p) for p in ds.values('filepath')])\n"
        "compute_concepts(clean, model=ds.get_run_info('concepts').config.model, "
        f"pretrained='{tiny_checkpoint}', corpus=['sky', 'dog', 'person'], batch_size=30)\n"
        "print('RESULT', max(np.abs(a - b).max() for a, b in zip(ds.values('concepts'), clean.values('concepts'))))\n"
    )
    assert code == 0, err
    resumed, totals, difference = out
    already_done, computed, failed = map(int, resumed.split())
    # 20 were written before the crash; an unclean stop may lose the last unjournaled ones (rewritten now)
    assert already_done + computed == 30 and already_done <= 20 and failed == 0
    assert list(map(int, totals.split())) == [30, 30, 30, 30]  # every sample once, each with concepts
    assert float(difference) < 1e-5  # the resumed vectors are those of an uninterrupted run


def test_a_database_restart_while_a_run_is_saved_fails_clearly_and_a_retrain_saves_it_once(own_mongod):
    uri, start, kill = own_mongod
    child = children(uri)
    setup = (
        "import numpy as np\n"
        "from fiftyone_inficond.corpus import corpus_id\n"
        "from fiftyone_inficond.runs import CONCEPTS_METHOD, record_run\n"
        "from fiftyone_inficond.teacher import set_teacher_scores\n"
        "rng = np.random.default_rng(0)\n"
        "concepts = rng.random((200, 20)).astype(np.float32)\n"
        "ds = fo.Dataset('faults', persistent=True)\n"
        "ds.add_samples([fo.Sample(filepath=f'/x/{i}.jpg', concepts=v) for i, v in enumerate(concepts)])\n"
        "names = [f'c{j}' for j in range(20)]\n"
        "record_run(ds, 'concepts', CONCEPTS_METHOD, corpus_id=corpus_id(names), concepts=names)\n"
        "set_teacher_scores(ds, 1 / (1 + np.exp(-10 * (concepts[:, :3] - 0.5))), ['a', 'b', 'c'])\n"
    )
    train = ("from fiftyone_inficond.students.registry import list_student_runs, load_students, train_students\n"
             "ds = fo.load_dataset('faults')\n"
             "print('RESULT', list_student_runs(ds))\n"
             "train_students(ds, key='s', gt_field=None, epochs=1)\n")

    # The server dies after the run's history was written, before the run itself was registered.
    code, _, err = child(setup + stop_database_after("fiftyone_inficond.students.store.insert_first", 1,
                                                     server_pid(uri)) + train)
    assert code == 1
    assert ("DatabaseUnavailable: The database stopped answering while student run 's' was saved: it was not "
            "saved (nothing of it is kept); train again once the database is back") in err, err[-2000:]
    kill()
    start()

    code, out, err = child(
        train
        + "from fiftyone_inficond import fiftyone_api\n"
        "from fiftyone_inficond.students import store\n"
        "print('RESULT', list_student_runs(ds), "
        "store._history().count_documents({'dataset_id': fiftyone_api.dataset_id(ds)}),"
        " load_students(ds, 's').revision)\n"
    )
    assert code == 0, err
    before, after = out
    assert before == "[]"  # the interrupted save left no run behind
    assert after == "['s'] 1 0"  # one run, one history entry: the orphaned one was purged


def test_an_image_the_process_may_not_read_is_reported_and_a_rerun_finishes_it(coco_subset, tiny_checkpoint,
                                                                               monkeypatch):
    refused = coco_subset.first()
    real_open = images.Image.open

    def open_image(path, *args, **kwargs):
        if path == refused.filepath:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(images.Image, "open", open_image)
    compute = lambda: compute_concepts(coco_subset, model=TINY_MODEL, pretrained=tiny_checkpoint,  # noqa: E731
                                       corpus=["sky", "dog"], batch_size=4)
    result = compute()
    assert result.computed == 11 and list(result.failed) == [refused.id]
    assert result.failed[refused.id].startswith("PermissionError: [Errno 13] Permission denied")
    assert coco_subset.exists("concepts").count() == coco_subset.exists("concepts_segments").count() == 11
    assert refused.id not in coco_subset.exists("concepts_segments").values("id")  # nothing half-written

    monkeypatch.undo()  # the permission is granted
    result = compute()
    assert (result.already_done, result.computed, result.failed) == (11, 1, {})
    assert coco_subset.count("concepts") == 12


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        self.file.close()


def test_a_full_disk_while_caching_leaves_the_previous_cache_whole(small, tmp_path, monkeypatch):
    directory = str(tmp_path / "cache")
    before = streaming_cache.cache_inputs(small, directory, dtype="float32")
    rows = before.rows("concepts", np.arange(len(before)))
    monkeypatch.setattr(streaming_cache, "open",
                        lambda path, mode="r", *a, **k: (_FullDisk(open(path, mode)) if "w" in mode
                                                         else open(path, mode)),
                        raising=False)
    with pytest.raises(WriteFailed, match=r"Cannot write the training cache to .*\(No space left on device\): "
                                          r"nothing was written there"):
        streaming_cache.cache_inputs(small, directory, chunk_rows=64)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["cache"]  # no staging directory left behind
    after = streaming_cache.InputsCache.open(directory)
    assert after.dtype == "float32" and np.array_equal(after.rows("concepts", np.arange(len(after))), rows)


def test_a_cache_directory_that_cannot_be_created_is_refused_clearly(small, tmp_path):
    (tmp_path / "a file").write_text("not a directory")
    with pytest.raises(WriteFailed, match=r"Cannot write the training cache to .*a file/cache' \(Not a directory\)"):
        streaming_cache.cache_inputs(small, str(tmp_path / "a file" / "cache"))
    assert os.listdir(tmp_path) == ["a file"]


# Round 3, item 15: a database that stops, or freezes, while a run is trained or tuned -----------------

OUTAGE = """
import os, signal, sys, time
import numpy as np
import fiftyone as fo
from fiftyone_inficond.corpus import corpus_id
from fiftyone_inficond.errors import DatabaseUnavailable
from fiftyone_inficond.runs import CONCEPTS_METHOD, record_run
from fiftyone_inficond.students import registry
from fiftyone_inficond.teacher import set_teacher_scores
fo.config.show_progress_bars = False
rng = np.random.default_rng(0)
concepts = rng.random((100, 8)).astype(np.float32)
ds = fo.Dataset('outage', persistent=True, overwrite=True)
ds.add_samples([fo.Sample(filepath=f'/x/{i}.jpg', concepts=v) for i, v in enumerate(concepts)])
names = [f'c{j}' for j in range(8)]
record_run(ds, 'concepts', CONCEPTS_METHOD, corpus_id=corpus_id(names), concepts=names)
set_teacher_scores(ds, 1 / (1 + np.exp(-10 * (concepts[:, :2] - 0.5))), ['a', 'b'])
server, signal_name = int(sys.argv[1]), sys.argv[2]
fit = registry.fit_students

def fit_then_lose_the_database(*args, **kwargs):  # the database goes away while the students fit
    os.kill(server, getattr(signal, signal_name))
    return fit(*args, **kwargs)

def answer(what, action):
    start = time.time()
    try:
        action()
        print("RESULT", what, "done", flush=True)
    except DatabaseUnavailable as error:
        cause = f" ({type(error.__cause__).__name__}"  # the sentence, without pymongo's words after it
        print("RESULT", what, round(time.time() - start), str(error).split(cause)[0], flush=True)

registry.fit_students = fit_then_lose_the_database
answer("train", lambda: registry.train_students(ds, key='s', gt_field=None, epochs=1, budget=None))
registry.fit_students = fit
server = int(sys.stdin.readline())  # the database is back, a new server
answer("again", lambda: registry.train_students(ds, key='s', gt_field=None, epochs=1, budget=None))
run = registry.load_students(ds, 's')
import fiftyone_inficond.students.run as run_module
fit_tuned = run_module.fit_tuned

def tune_then_freeze(*args, **kwargs):
    os.kill(server, signal.SIGSTOP)
    return fit_tuned(*args, **kwargs)

run_module.fit_tuned = tune_then_freeze
answer("tune", lambda: run.tune(up={'a': ['c3']}, epochs=1))
"""


def test_a_database_that_stops_or_freezes_ends_training_and_tuning_in_one_sentence_and_holds_nothing(own_mongod):
    uri, start, kill = own_mongod
    pid = server_pid(uri)
    waits = "serverSelectionTimeoutMS=2000&connectTimeoutMS=2000&heartbeatFrequencyMS=500"
    env = {**os.environ, "FIFTYONE_DATABASE_URI": f"{uri}/?{waits}"}
    child = subprocess.Popen([sys.executable, "-c", OUTAGE, str(pid), "SIGKILL"], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        results = (line.rstrip("\n").split(" ", 3)[1:] for line in child.stdout if line.startswith("RESULT"))
        answers = itertools.chain(results, iter(lambda: pytest.fail(child.stderr.read()[-3000:]), None))
        what, seconds, message = next(answers)
        assert what == "train" and int(seconds) <= 30, (seconds, message)
        assert message == ("The database stopped answering while student run 's' was saved: it was not saved "
                           "(nothing of it is kept); train again once the database is back")
        kill()
        start()
        child.stdin.write(f"{server_pid(uri)}\n")
        child.stdin.flush()
        assert next(answers) == ["again", "done"]  # the same key, in the same process: not held for 30 minutes
        what, seconds, message = next(answers)
        assert what == "tune" and int(seconds) <= 60, (seconds, message)
        assert message.startswith("The database stopped answering while student run 's' was tuned: once it is "
                                  "back, reload the run")
        assert child.wait(timeout=60) == 0, child.stderr.read()[-3000:]
    finally:
        os.kill(server_pid(uri), signal.SIGCONT)
        child.kill()
