"""The few FiftyOne internals this package relies on, in one place.

FiftyOne caches a dataset's document per process, so a run deleted or replaced by another
client is still listed here until a reload; the checks that make concurrent saves safe read
the ``runs`` collection directly instead. Everything private (``_dataset``, ``_doc``,
collection names) is confined to this module.
"""

import fiftyone.core.odm as foo

RUNS_COLLECTION = "runs"  # fiftyone.core.odm.RunDocument
DATASETS_COLLECTION = "datasets"  # fiftyone.core.odm.DatasetDocument


def dataset_of(samples):
    """The dataset a collection (dataset or view) belongs to."""
    return samples._dataset


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
