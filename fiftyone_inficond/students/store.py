"""Student runs in the database: a FiftyOne custom run plus an append-only history.

The FiftyOne run (method ``inficond_students``) holds what never changes: classes, concept
and teacher fields and what they held, hyper-parameters, and ``uid``, a fresh id per trained
run. Its results mirror the newest weights (as base64 text, so FiftyOne can export them) for
FiftyOne-native readers. Every iteration (training, tuning, revert) is one document of the
``inficond_student_revisions`` collection with its exact weights, biases and bounds; the
first also holds the run's samples and training split.

History is keyed by ``(dataset id, run uid, revision)``, never by the run key, so:

- renaming a run changes one document (the run's), and its history follows by itself;
- a run trained again under a deleted run's key, or a clone's run, never inherits history;
- a crash between writing a run and its history leaves only unreachable documents, which
  :func:`purge_orphans` removes.

Saving iteration ``r + 1`` is an insert under a unique index, so when two clients both tune
from revision ``r``, MongoDB accepts exactly one: the other gets a :class:`StaleRunError`
naming who changed the run. A save also checks, before and after inserting, that the run it
extends still exists with the same uid: a run deleted or retrained meanwhile is never revived.
"""

import base64
import functools
import getpass
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from bson import Binary, ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.errors import StaleRunError, UnknownName

STUDENTS_METHOD = "inficond_students"
HISTORY_COLLECTION = "inficond_student_revisions"
_ARRAYS = ("weight", "bias", "lower", "upper")
_SAMPLES = ("sample_ids", "train")
# Every class's metrics per split for the entry's state, read back instead of computed again
# (a metrics pass over 1M samples takes seconds); not a part of what the history shows.
METRICS = "per_class_metrics"
# A run is written history first, record second: history younger than this may belong to a
# run another client is registering right now, so it is never purged.
ORPHAN_GRACE = timedelta(minutes=10)


@dataclass
class StudentState:
    """The exact parameters of one iteration: weights, biases and weight bounds."""

    weight: np.ndarray  # (k, n_concepts) float32
    bias: np.ndarray  # (k,) float32
    lower: np.ndarray  # (k, n_concepts) float32, -inf where unbounded
    upper: np.ndarray  # (k, n_concepts) float32, +inf where unbounded


def current_user():
    return getpass.getuser()


@functools.cache
def _history():
    # The unique index is what makes concurrent saves safe; ensuring it once per process
    # keeps a round trip off every save and load.
    collection = fiftyone_api.database()[HISTORY_COLLECTION]
    collection.create_index(
        [("dataset_id", ASCENDING), ("run_uid", ASCENDING), ("revision", ASCENDING)], unique=True
    )
    return collection


def _encode(array):
    array = np.ascontiguousarray(array, dtype=np.float32)
    return {"shape": list(array.shape), "data": Binary(array.tobytes())}


def _encode_text(array):
    array = np.ascontiguousarray(array, dtype=np.float32)
    return {"shape": list(array.shape), "base64": base64.b64encode(array.tobytes()).decode("ascii")}


def decode(doc):
    """A float32 array from a stored ``{"shape", "data"}`` (history) or ``{"shape", "base64"}`` (mirror)."""
    data = doc["data"] if "data" in doc else base64.b64decode(doc["base64"])
    return np.frombuffer(data, dtype=np.float32).reshape(doc["shape"]).copy()


def _run_filter(samples, uid):
    return {"dataset_id": fiftyone_api.dataset_id(samples), "run_uid": uid}


def run_uid(samples, key):
    """The uid of student run ``key`` as stored now, or ``None`` if there is no such run."""
    config = fiftyone_api.stored_run_config(samples, key, names=("method", "uid"))
    if config is None or config.get("method") != STUDENTS_METHOD:
        return None
    return config.get("uid")


def _require_current(samples, key, uid):
    if run_uid(samples, key) != uid:
        raise StaleRunError(
            f"Student run '{key}' was deleted, renamed or trained again by someone else since you "
            f"loaded it, so your change was not saved: open the runs list again"
        )


def require_fresh(samples, key, uid, revision):
    """Refuses to build on ``revision`` of run ``key`` when the run was deleted or replaced, or
    someone saved a newer revision: two small reads, so a change is refused before any work."""
    _require_current(samples, key, uid)
    if newest_revision(samples, uid) != revision:
        raise _changed(samples, key, uid, revision + 1)


def _changed(samples, key, uid, revision):
    """The error for a save of ``revision`` that someone else's save of it came before (which may
    itself be gone by now, e.g. with its run deleted: then the message cannot name who saved it)."""
    winner = _history().find_one({**_run_filter(samples, uid), "revision": revision})
    by = "" if winner is None else (
        f" by {winner['user']} at {winner['time']:%Y-%m-%d %H:%M:%S} UTC ({winner['kind']}, revision {revision})"
    )
    return StaleRunError(
        f"Student run '{key}' was changed{by} after you loaded revision {revision - 1}. "
        f"Your change was not saved: reload the run and apply it again"
    )


def insert_first(samples, uid, state, sample_ids, train, **info):
    """Stores revision 0 of a new run (uid ``uid``) with its samples, before the run is registered."""
    doc = _entry(samples, uid, 0, state, info)
    doc["sample_ids"] = Binary(b"".join(ObjectId(i).binary for i in sample_ids))
    doc["train"] = Binary(np.packbits(np.asarray(train, dtype=bool)).tobytes())
    _history().insert_one(doc)
    return entry_summary(doc)


def append_entry(samples, key, uid, revision, state, **info):
    """Stores iteration ``revision`` of run ``key``; refuses it if that revision exists or the
    run was deleted or replaced since it was loaded."""
    _require_current(samples, key, uid)
    doc = _entry(samples, uid, revision, state, info)
    try:
        _history().insert_one(doc)
    except DuplicateKeyError:
        raise _changed(samples, key, uid, revision) from None
    try:
        _require_current(samples, key, uid)  # deleted while we inserted: take ours back
    except StaleRunError:
        _history().delete_one({"_id": doc["_id"]})
        raise
    mirror_results(samples, key, uid, revision, state)
    return entry_summary(doc)


def _entry(samples, uid, revision, state, info):
    return {
        **_run_filter(samples, uid),
        "revision": revision,
        "user": info.pop("user", None) or current_user(),
        "time": datetime.now(timezone.utc),
        **info,
        **{name: _encode(getattr(state, name)) for name in _ARRAYS},
    }


def mirror_results(samples, key, uid, revision, state):
    """The newest weights as the FiftyOne run's results, JSON-safe so dataset exports keep them."""
    dataset = fiftyone_api.dataset_of(samples)
    results = dataset.init_run_results(
        key, uid=uid, revision=revision, weight=_encode_text(state.weight), bias=_encode_text(state.bias)
    )
    dataset.save_run_results(key, results, overwrite=True, cache=False)


def entry_summary(doc):
    """An entry without its arrays, JSON-safe (its time in ISO 8601, UTC): what the history shows."""
    hidden = (*_ARRAYS, *_SAMPLES, METRICS, "_id", "dataset_id", "run_uid")
    summary = {k: v for k, v in doc.items() if k not in hidden}
    summary["time"] = doc["time"].replace(tzinfo=timezone.utc).isoformat(timespec="seconds")
    return summary


def list_entries(samples, uid):
    """All iterations of run ``uid``, oldest first, without their arrays."""
    projection = {name: False for name in (*_ARRAYS, *_SAMPLES, METRICS)}
    cursor = _history().find(_run_filter(samples, uid), projection).sort("revision", ASCENDING)
    return [entry_summary(doc) for doc in cursor]


def newest_revision(samples, uid):
    """The newest stored revision number of run ``uid`` (one small read), or ``None``."""
    doc = _history().find_one(_run_filter(samples, uid), {"revision": True}, sort=[("revision", -1)])
    return None if doc is None else doc["revision"]


def load_state(samples, key, uid, revision=None):
    """``(revision, StudentState)`` of an iteration (the newest by default)."""
    return load_revision(samples, key, uid, revision)[:2]


def load_revision(samples, key, uid, revision=None):
    """``(revision, StudentState, metrics)`` of an iteration (the newest by default), in one read:
    ``metrics`` is what it stored of its per-class metrics (``{split: {metric: [value per
    class]}}``), ``None`` for one saved without them."""
    query = _run_filter(samples, uid)
    if revision is not None:
        query["revision"] = revision
    doc = _history().find_one(query, {name: False for name in _SAMPLES}, sort=[("revision", -1)])
    if doc is None:
        if revision is not None:
            raise UnknownName(f"Student run '{key}' has no revision {revision}: pick one from its history")
        raise _no_history(samples, key)
    return doc["revision"], StudentState(**{name: decode(doc[name]) for name in _ARRAYS}), doc.get(METRICS)


def _no_history(samples, key):
    return UnknownName(
        f"Student run '{key}' has no stored iterations on dataset "
        f"'{fiftyone_api.dataset_of(samples).name}'. Its history stays with the dataset it was "
        f"trained on (clones and imports do not carry it): train it again here"
    )


def load_samples(samples, key, uid):
    """``(sample_ids, train)`` of run ``uid``: ids in row order and the bool training mask."""
    doc = _history().find_one({**_run_filter(samples, uid), "revision": 0}, {name: True for name in _SAMPLES})
    if doc is None:
        raise _no_history(samples, key)
    raw = bytes(doc["sample_ids"])
    ids = [str(ObjectId(raw[i : i + 12])) for i in range(0, len(raw), 12)]
    train = np.unpackbits(np.frombuffer(doc["train"], dtype=np.uint8))[: len(ids)].astype(bool)
    return ids, train


def delete_history(samples, uid):
    _history().delete_many(_run_filter(samples, uid))


def purge_orphans(grace=ORPHAN_GRACE):
    """Deletes history no run can reach: its dataset deleted, or its run deleted (or never
    registered, after a crash) longer than ``grace`` ago.

    Returns:
        the number of documents deleted
    """
    datasets = fiftyone_api.dataset_ids()
    live = fiftyone_api.run_uids(STUDENTS_METHOD)
    cutoff = datetime.now(timezone.utc) - grace
    groups = _history().aggregate(
        [{"$group": {"_id": {"dataset_id": "$dataset_id", "run_uid": "$run_uid"}, "newest": {"$max": "$time"}}}]
    )
    deleted = 0
    for group in groups:
        dataset, uid = group["_id"]["dataset_id"], group["_id"]["run_uid"]
        # A deleted dataset never comes back; a missing run may be one being registered now.
        old = group["newest"].replace(tzinfo=timezone.utc) < cutoff
        if dataset not in datasets or ((dataset, uid) not in live and old):
            deleted += _history().delete_many({"dataset_id": dataset, "run_uid": uid}).deleted_count
    return deleted
