"""Student runs in the database: a FiftyOne custom run plus an append-only history.

The FiftyOne run (method ``inficond_students``) holds what never changes: classes, concept
and teacher fields, corpus id, hyper-parameters; its results mirror the newest weights so
FiftyOne-native readers see them. Every iteration (training, tuning, revert) is one document
of the ``inficond_student_history`` collection with its exact weights, biases and bounds.

Saving iteration ``r + 1`` is an insert under a unique (dataset, run, revision) index, so when
two clients both tune from revision ``r``, MongoDB accepts exactly one: the other gets a
:class:`StaleRunError` naming who changed the run, and nothing of either is lost.
"""

import functools
import getpass
from dataclasses import dataclass
from datetime import datetime, timezone

import fiftyone.core.odm as foo
import numpy as np
from bson import Binary
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

STUDENTS_METHOD = "inficond_students"
HISTORY_COLLECTION = "inficond_student_history"
_ARRAYS = ("weight", "bias", "lower", "upper")


class StaleRunError(RuntimeError):
    """A save based on an outdated revision of a student run."""


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
    collection = foo.get_db_conn()[HISTORY_COLLECTION]
    collection.create_index(
        [("dataset_id", ASCENDING), ("run_key", ASCENDING), ("revision", ASCENDING)], unique=True
    )
    return collection


def _encode(array):
    array = np.ascontiguousarray(array, dtype=np.float32)
    return {"shape": list(array.shape), "data": Binary(array.tobytes())}


def decode(doc):
    return np.frombuffer(doc["data"], dtype=np.float32).reshape(doc["shape"]).copy()


def _run_filter(dataset, key):
    return {"dataset_id": dataset._doc.id, "run_key": key}


def append_entry(dataset, key, revision, state, **info):
    """Stores iteration ``revision`` of run ``key``; refuses it if that revision exists."""
    doc = {
        **_run_filter(dataset, key),
        "revision": revision,
        "user": info.pop("user", None) or current_user(),
        "time": datetime.now(timezone.utc),
        **info,
        **{name: _encode(getattr(state, name)) for name in _ARRAYS},
    }
    try:
        _history().insert_one(doc)
    except DuplicateKeyError:
        winner = _history().find_one({**_run_filter(dataset, key), "revision": revision})
        raise StaleRunError(
            f"Student run '{key}' was changed by {winner['user']} at {winner['time']:%Y-%m-%d %H:%M:%S} "
            f"UTC ({winner['kind']}, revision {revision}) after you loaded revision "
            f"{revision - 1}. Your change was not saved: reload the run and apply it again"
        ) from None
    _mirror_results(dataset, key, revision, state)
    return entry_summary(doc)


def _mirror_results(dataset, key, revision, state):
    """The newest weights as the FiftyOne run's results (``{"shape", "data"}`` float32 bytes)."""
    results = dataset.init_run_results(
        key, revision=revision, weight=_encode(state.weight), bias=_encode(state.bias)
    )
    dataset.save_run_results(key, results, overwrite=True, cache=False)


def entry_summary(doc):
    """An entry without its arrays: what the history shows."""
    return {k: v for k, v in doc.items() if k not in (*_ARRAYS, "_id", "dataset_id", "run_key")}


def list_entries(dataset, key):
    """All iterations of run ``key``, oldest first, without their arrays."""
    projection = {name: False for name in _ARRAYS}
    cursor = _history().find(_run_filter(dataset, key), projection).sort("revision", ASCENDING)
    return [entry_summary(doc) for doc in cursor]


def load_state(dataset, key, revision=None):
    """``(revision, StudentState)`` of an iteration (the newest by default)."""
    query = _run_filter(dataset, key)
    if revision is not None:
        query["revision"] = revision
    doc = _history().find_one(query, sort=[("revision", -1)])
    if doc is None:
        if revision is not None:
            raise KeyError(f"Student run '{key}' has no revision {revision}")
        raise KeyError(
            f"Student run '{key}' has no stored iterations on dataset '{dataset.name}'. Its "
            f"history stays with the dataset it was trained on (clones do not carry it): "
            f"train it again here"
        )
    return doc["revision"], StudentState(**{name: decode(doc[name]) for name in _ARRAYS})


def delete_history(dataset, key):
    _history().delete_many(_run_filter(dataset, key))


def rename_history(dataset, key, new_key):
    _history().update_many(_run_filter(dataset, key), {"$set": {"run_key": new_key}})
