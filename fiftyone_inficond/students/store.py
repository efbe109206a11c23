"""Student runs in the database: a FiftyOne custom run plus an append-only history.

The FiftyOne run (method ``inficond_students``, typed by :mod:`.fiftyone_run`) holds what never
changes and reads in a few lines: concept and teacher fields and what they held, hyper-parameters,
sizes, and ``uid``, a fresh id per trained run. Every iteration (training, tuning, revert) is one
document of the ``inficond_student_revisions`` collection with its exact weights, biases and
bounds; the first also holds the run's samples and training split and its per-class and
per-concept arrays (:data:`RUN_ARRAYS`: classes, standardization, budgets, synonyms, concepts left out).

History is keyed by ``(dataset id, run uid, revision)``, never by the run key, so:

- renaming a run changes one document (the run's), and its history follows by itself;
- a run trained again under a deleted run's key never inherits history;
- a crash between writing a run and its history leaves only unreachable documents, which
  :func:`purge_orphans` removes;
- a clone's run (its record copied, with the same uid) takes a copy of the history as its own on
  first use (:func:`adopt_history`), and goes on from there apart from the original.

Saving iteration ``r + 1`` is an insert under a unique index, so when two clients both tune
from revision ``r``, MongoDB accepts exactly one: the other gets a :class:`StaleRunError`
naming who changed the run. A save also checks, before and after inserting, that the run it
extends still exists with the same uid: a run deleted or retrained meanwhile is never revived.
"""

import functools
import getpass
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from bson import Binary, ObjectId
from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.crashpoints import crashpoint
from fiftyone_inficond.errors import StaleRunError, UnknownName

STUDENTS_METHOD = "inficond_students"
HISTORY_COLLECTION = "inficond_student_revisions"
_ARRAYS = ("weight", "bias", "lower", "upper")
# What only revision 0 holds: the run's samples and split, and its arrays.
_FIRST = ("sample_ids", "train", "run_arrays", "cache")
# The run's settings kept with its history rather than in its FiftyOne record, which stays readable.
RUN_ARRAYS = ("classes", "synonyms", "values", "concept_mean", "concept_std", "class_budgets", "budget_path",
              "left_out")
# Every class's metrics per split for the entry's state, read back instead of computed again
# (a metrics pass over 1M samples takes seconds); not a part of what the history shows.
METRICS = "per_class_metrics"
DUPLICATE_KEY = 11000  # MongoDB's code for an insert the unique index refused
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
    budgets: np.ndarray = None  # (k,) ints: how many concepts each class may use, once changed by hand; None: the run's


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


def decode(doc):
    """A float32 array from a stored ``{"shape", "data"}``."""
    return np.frombuffer(doc["data"], dtype=np.float32).reshape(doc["shape"]).copy()


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


def insert_first(samples, uid, state, sample_ids, train, arrays, **info):
    """Stores revision 0 of a new run (uid ``uid``) with its samples and ``arrays`` (the config's
    :data:`RUN_ARRAYS`), before the run is registered."""
    doc = _entry(samples, uid, 0, state, info)
    doc["run_arrays"] = {name: arrays[name] for name in RUN_ARRAYS if name in arrays}
    doc["cache"] = arrays.get("cache")  # a streamed run's, for the purge of a deleted dataset's runs
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
    return entry_summary(doc)


def _entry(samples, uid, revision, state, info):
    return {
        **_run_filter(samples, uid),
        "revision": revision,
        "user": info.pop("user", None) or current_user(),
        "time": datetime.now(timezone.utc),
        **info,
        **{name: _encode(getattr(state, name)) for name in _ARRAYS},
        **({} if state.budgets is None else {"budgets": [int(b) for b in state.budgets]}),
    }


def entry_summary(doc):
    """An entry without its arrays, JSON-safe (its time in ISO 8601, UTC): what the history shows."""
    hidden = (*_ARRAYS, *_FIRST, METRICS, "_id", "dataset_id", "run_uid")
    summary = {k: v for k, v in doc.items() if k not in hidden}
    summary["time"] = doc["time"].replace(tzinfo=timezone.utc).isoformat(timespec="seconds")
    return summary


def list_entries(samples, uid):
    """All iterations of run ``uid``, oldest first, without their arrays."""
    projection = {name: False for name in (*_ARRAYS, *_FIRST, METRICS)}
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
    doc = _history().find_one(query, {name: False for name in _FIRST}, sort=[("revision", -1)])
    if doc is None:
        if revision is not None:
            raise UnknownName(f"Student run '{key}' has no revision {revision}: pick one from its history")
        raise _no_history(samples, key)
    budgets = None if doc.get("budgets") is None else np.asarray(doc["budgets"], dtype=np.int64)
    return doc["revision"], StudentState(**{name: decode(doc[name]) for name in _ARRAYS}, budgets=budgets), \
        doc.get(METRICS)


def load_metrics(samples, key, uid, revision):
    """What iteration ``revision`` stored of its per-class metrics (as :func:`load_revision`'s), in
    one small read: ``None`` for one saved without them."""
    doc = _history().find_one({**_run_filter(samples, uid), "revision": revision}, {METRICS: True})
    if doc is None:
        raise UnknownName(f"Student run '{key}' has no revision {revision}: pick one from its history")
    return doc.get(METRICS)


def set_note(samples, key, uid, revision, note, user=None):
    """Writes ``note`` on iteration ``revision`` (any, at any time: the only change a stored
    iteration takes), with who wrote it and when; its weights and metrics stay as saved."""
    written = _history().update_one({**_run_filter(samples, uid), "revision": revision}, {"$set": {
        "note": note,
        "note_by": user or current_user(),
        "note_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }})
    if not written.matched_count:
        raise UnknownName(f"Student run '{key}' has no revision {revision}: pick one from its history")


def _no_history(samples, key):
    return UnknownName(
        f"Student run '{key}' has no stored iterations on dataset '{fiftyone_api.dataset_of(samples).name}', "
        f"nor on a dataset it was cloned from (deleted, or in another database): train it again here"
    )


def load_samples(samples, key, uid):
    """``(sample_ids, train, arrays)`` of run ``uid``: ids in row order, the bool training mask, and
    its :data:`RUN_ARRAYS` (``{}`` for a run that kept them in its record)."""
    doc = _history().find_one({**_run_filter(samples, uid), "revision": 0}, {name: True for name in _FIRST})
    if doc is None:
        raise _no_history(samples, key)
    ids = _ids(doc)
    train = np.unpackbits(np.frombuffer(doc["train"], dtype=np.uint8))[: len(ids)].astype(bool)
    return ids, train, doc.get("run_arrays", {})


def _ids(doc):
    raw = bytes(doc["sample_ids"])
    return [str(ObjectId(raw[i : i + 12])) for i in range(0, len(raw), 12)]


def history_elsewhere(uid):
    """``(dataset id, sample ids)`` of run ``uid``'s history on the dataset it was trained on or
    first adopted by, or ``None`` where there is none (a run imported from another database)."""
    doc = _history().find_one({"run_uid": uid, "revision": 0}, {"dataset_id": True, "sample_ids": True})
    return None if doc is None else (doc["dataset_id"], _ids(doc))


def adopt_history(samples, uid, source):
    """Copies run ``uid``'s history on dataset ``source`` as the history of the dataset of
    ``samples`` (a clone's, whose record of the run came with it). Two clients adopting at once
    copy the same documents: the unique index keeps one copy of each, and as every document is tried
    (unordered), one adopter stopped midway leaves the other to copy the rest."""
    docs = list(_history().find({"dataset_id": source, "run_uid": uid}))
    if not docs:
        return  # the source's run was deleted meanwhile: loading says there is no history
    own = fiftyone_api.dataset_id(samples)
    for doc in docs:
        del doc["_id"]
        doc["dataset_id"] = own
    try:
        _history().insert_many(docs, ordered=False)
    except BulkWriteError as error:
        if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
            raise


def delete_history(samples, uid):
    _history().delete_many(_run_filter(samples, uid))


def history_uids():
    """The uids of every run with history, in every dataset."""
    return set(_history().distinct("run_uid"))


def purge_orphans(grace=ORPHAN_GRACE):
    """Deletes history no run can reach: its dataset deleted, or its run deleted (or never
    registered, after a crash) longer than ``grace`` ago.

    Returns:
        the disk caches of the purged runs that no run reads any more (a clone's run reads its
        original's), for the caller to remove
    """
    cutoff = datetime.now(timezone.utc) - grace
    # Listed before the datasets and runs are read: any history listed belongs to a dataset that
    # exists by then, so a colleague's dataset created meanwhile is never taken for a deleted one.
    groups = list(_history().aggregate(
        [{"$group": {"_id": {"dataset_id": "$dataset_id", "run_uid": "$run_uid"}, "newest": {"$max": "$time"},
                     "cache": {"$max": "$cache"}}}]
    ))
    crashpoint("purge:listed")
    datasets = fiftyone_api.dataset_ids()
    live = fiftyone_api.run_uids(STUDENTS_METHOD)
    live_uids = {uid for _, uid in live}
    caches = []
    for group in groups:
        dataset, uid = group["_id"]["dataset_id"], group["_id"]["run_uid"]
        # A deleted dataset never comes back; a missing run may be one being registered now.
        old = group["newest"].replace(tzinfo=timezone.utc) < cutoff
        if dataset not in datasets or ((dataset, uid) not in live and old):
            _history().delete_many({"dataset_id": dataset, "run_uid": uid})
            if group["cache"] and uid not in live_uids:
                caches.append(group["cache"])
    return caches
