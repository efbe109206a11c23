"""The few FiftyOne internals this package relies on, in one place.

FiftyOne caches a dataset's document per process, so a run deleted or replaced by another
client is still listed here until a reload; the checks that make concurrent saves safe read
the ``runs`` collection directly instead. Everything private (``_dataset``, ``_doc``,
collection names) is confined to this module.

Bulk reads and writes of arrays go around FiftyOne's per-value codec (``np.save``/``np.load`` of
every array, mostly header parsing) but keep its stored format, zlib-compressed ``.npy`` bytes,
so FiftyOne reads what is written here and the other way round.
"""

import contextlib
import copy
import functools
import io
import zlib
from datetime import datetime

import fiftyone.core.odm as foo
import numpy as np
from bson import ObjectId, json_util
from pymongo import UpdateOne
from pymongo.errors import ConnectionFailure

from fiftyone_inficond.errors import DatabaseUnavailable, InvalidRequest

RUNS_COLLECTION = "runs"  # fiftyone.core.odm.RunDocument
DATASETS_COLLECTION = "datasets"  # fiftyone.core.odm.DatasetDocument


def dataset_of(samples):
    """The dataset a collection (dataset or view) belongs to."""
    return samples._dataset


def require_own_samples(samples, what):
    """Refuses to write ``what`` (e.g. "concepts") on a view whose samples are not its dataset's
    own: a patches, frames or clips view holds temporary copies in a generated dataset, so what
    is written there never reaches the dataset; a dynamic groups view yields one sample per group."""
    if samples._is_dynamic_groups:
        reason = "a dynamic groups view holds one sample per group"
    elif samples._is_generated:
        kind = next(k for k, is_kind in (("patches", samples._is_patches), ("frames", samples._is_frames),
                                         ("clips", samples._is_clips), ("generated", True)) if is_kind)
        reason = f"a {kind} view holds temporary copies of the dataset's samples, so nothing written there reaches it"
    else:
        return
    raise InvalidRequest(
        f"Cannot write {what} on this view: {reason}; run it on dataset '{samples._root_dataset.name}' or a "
        f"filtered view of its samples"
    )


def sharing_dataset(context, dataset):
    """An operator execution context given ``dataset`` as loaded: FiftyOne's context reloads the
    dataset from the database on first use (some 40 ms), once per context."""
    context._dataset = dataset
    return context


def fresh_dataset(samples):
    """The dataset of ``samples`` reloaded, so its runs and fields are as stored now: FiftyOne's
    own run calls (register, rename, delete) read this process's cached copy."""
    dataset = dataset_of(samples)
    dataset.reload()
    return dataset


def dataset_id(samples):
    """The ``ObjectId`` of the dataset of ``samples``."""
    return dataset_of(samples)._doc.id


def database():
    return foo.get_db_conn()


def exact_count(samples):
    """The number of samples, counted: ``len(dataset)`` is MongoDB's estimate, which can read 0
    for a full collection after an unclean database restart."""
    return samples.count("id")


def stored_run_config(samples, key, names=None):
    """The config dict of run ``key`` as stored now (not as cached by this process), or ``None``;
    only its attributes ``names`` when given (one small read)."""
    projection = {"config": True} if names is None else {f"config.{name}": True for name in names}
    doc = database()[RUNS_COLLECTION].find_one({"_dataset_id": dataset_id(samples), "key": key}, projection)
    return None if doc is None else doc["config"]


def replace_run(samples, key, config):
    """Replaces run ``key``'s config and view with ``config`` registered on ``samples``, in one write
    (the key is never free meanwhile, as deleting and registering again would leave it)."""
    stages = None if samples is samples._root_dataset else [
        json_util.dumps(stage) for stage in samples._serialize(include_uuids=False)
    ]
    database()[RUNS_COLLECTION].update_one(
        {"_dataset_id": dataset_id(samples), "key": key},
        {"$set": {"config": copy.deepcopy(config.serialize()), "view_stages": stages}},
    )
    fresh_dataset(samples)


def run_uids(method):
    """``(dataset_id, config uid)`` of every stored run of ``method``, in every dataset."""
    cursor = database()[RUNS_COLLECTION].find({"config.method": method}, {"_dataset_id": True, "config.uid": True})
    return {(doc["_dataset_id"], doc["config"].get("uid")) for doc in cursor}


def dataset_ids():
    """The ids of every dataset in the database."""
    return set(database()[DATASETS_COLLECTION].distinct("_id"))


def label_path(samples, field):
    """The path of the ``label`` attribute inside label field ``field`` (lists included)."""
    return samples._get_label_field_path(field, "label")[1]


def run_keys(samples, method):
    """Keys of the runs of ``method`` on the dataset of ``samples``, as stored now, sorted."""
    query = {"_dataset_id": dataset_id(samples), "config.method": method}
    return sorted(database()[RUNS_COLLECTION].distinct("key", query))


def values(samples, paths, arrays=()):
    """``samples.values(paths)``, with the array fields named in ``arrays`` decoded in bulk."""
    columns = samples.values(list(paths), _raw=True)
    return [[decode_array(v) for v in column] if path in arrays else column for path, column in zip(paths, columns)]


@contextlib.contextmanager
def database_errors(message):
    """Turns the database not answering (refused, reset or timed out connections: pymongo's
    ``ConnectionFailure``) into a :class:`DatabaseUnavailable` whose message is ``message()``,
    called then, so that it can say how far the write got."""
    try:
        yield
    except ConnectionFailure as error:
        raise DatabaseUnavailable(f"{message()} ({type(error).__name__}: {str(error)[:200]})") from error


def speaks_for_database(describe):
    """Decorates a function so that the database not answering inside it is a :class:`DatabaseUnavailable`
    whose message is ``describe(*args, **kwargs)`` of the call: one sentence, not pymongo's error."""
    def decorate(function):
        @functools.wraps(function)
        def wrapped(*args, **kwargs):
            with database_errors(lambda: describe(*args, **kwargs)):
                return function(*args, **kwargs)
        return wrapped
    return decorate


def stream_documents(samples, fields, batch_size=1000):
    """Yields the raw documents of ``samples`` (``_id`` and the top-level ``fields``, arrays as
    stored) one at a time from one MongoDB cursor, ``batch_size`` per round trip: memory stays
    flat however many samples there are (``values()`` builds whole columns)."""
    projection = {"_id": True, **{field: True for field in fields}}
    cursor = samples._aggregate(pipeline=[{"$project": projection}])
    cursor.batch_size(batch_size)
    try:
        yield from cursor
    finally:
        cursor.close()


def update_samples(samples, updates):
    """Writes ``{sample_id: {path: value}}`` in one bulk write, one update per sample (so the
    fields of a sample change together), numpy arrays stored as FiftyOne stores them and
    ``last_modified_at`` set as FiftyOne sets it. Paths must be declared fields."""
    now = datetime.utcnow()
    ops = [
        UpdateOne(
            {"_id": ObjectId(sample_id)},
            {"$set": {**{p: _to_mongo(v) for p, v in fields.items()}, "last_modified_at": now}},
        )
        for sample_id, fields in updates.items()
    ]
    if ops:
        dataset_of(samples)._bulk_write(ops, ids=list(updates))


def decode_array(data):
    """A numpy array from FiftyOne's stored bytes (``None`` stays ``None``)."""
    if data is None:
        return None
    data = zlib.decompress(data)
    if data[6:8] != b"\x01\x00":  # not .npy version 1.0: let numpy read it
        return np.load(io.BytesIO(data))
    end = 10 + int.from_bytes(data[8:10], "little")
    dtype, shape, order = _npy_header(data[:end])
    return np.frombuffer(data, dtype, offset=end).reshape(shape, order=order)


def encode_array(array):
    """FiftyOne's stored bytes of a numpy array."""
    array = np.asarray(array)
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    data = _npy_prefix(array.dtype.str, array.shape, order == "F") + array.tobytes(order=order)
    return zlib.compress(data, 1)  # any level reads back; float vectors barely compress anyway


_HEADERS = {}  # header bytes -> (dtype, shape, order)
_PREFIXES = {}  # (dtype, shape, fortran) -> header bytes


def _npy_header(prefix):
    if prefix not in _HEADERS:
        stream = io.BytesIO(prefix)
        np.lib.format.read_magic(stream)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        _HEADERS[prefix] = (dtype, shape, "F" if fortran else "C")
    return _HEADERS[prefix]


def _npy_prefix(dtype, shape, fortran):
    key = (dtype, shape, fortran)
    if key not in _PREFIXES:
        stream = io.BytesIO()
        np.lib.format.write_array_header_1_0(stream, {"descr": dtype, "fortran_order": fortran, "shape": shape})
        _PREFIXES[key] = stream.getvalue()  # magic, version, length, header
    return _PREFIXES[key]


def _to_mongo(value):
    return encode_array(value) if isinstance(value, np.ndarray) else value
