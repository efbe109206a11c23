"""Student runs whose concept vectors stay on disk: when a run is streamed, where its cache lies,
and its arrays read for training and loading.

A run's concept vectors are ``n x n_concepts`` float32 in memory: 1,000,000 samples x 1,153
concepts is 4.6 GB, before anything is computed from them. Past a quarter of the memory free
when it is trained (or when asked), a run keeps them in a disk cache of its own instead
(:mod:`fiftyone_inficond.students.cache`, float16: 2.3 GB at that size) and reads them back
standardized, chunk by chunk, for every pass (:class:`~fiftyone_inficond.students.cache.CachedInputs`).
What is ``n x k`` (teacher probabilities, ground truth, logits: 320 MB at 1M x 80) stays in memory.
Everything else about the run is the same: its history, tuning, reverting, export and panels.

The cache is the run's copy of its inputs as trained: it lies on the machine that trained the
run (``config["cache"]``), is removed with the run, and a later edit of the dataset's vectors
does not reach it (a run in memory would refuse to load; this one describes what it was trained on).
"""

import glob
import os
import shutil
import socket

import fiftyone as fo
import numpy as np
import psutil

from fiftyone_inficond.errors import InvalidRequest, RunInputsChanged
from fiftyone_inficond.fiftyone_api import database, dataset_id, dataset_of, exact_count, run_uids
from fiftyone_inficond.students.cache import InputsCache, cache_inputs
from fiftyone_inficond.students.data import DistillationData, labels_in_order, require_truth_for, truth_matrix
from fiftyone_inficond.students.store import STUDENTS_METHOD

MEMORY_SHARE = 4  # a run streams when its float32 vectors would take more than 1/4 of the free memory


def streams(samples, concepts_field, teacher_field, n_concepts, streamed=None):
    """Whether a run trained on ``samples`` keeps its vectors on disk: ``streamed`` when given,
    else whether they would take more than 1/:data:`MEMORY_SHARE` of the memory free now."""
    if streamed is not None:
        if not isinstance(streamed, bool):
            raise InvalidRequest(f"streamed is True, False or None (decided by size); got {streamed!r}")
        return streamed
    rows = exact_count(samples.exists(concepts_field).exists(teacher_field))
    return rows * n_concepts * 4 > psutil.virtual_memory().available / MEMORY_SHARE


def cache_directory(uid, cache_dir=None):
    """Where run ``uid``'s cache lies: under ``cache_dir``, by default FiftyOne's dataset directory."""
    return os.path.join(os.path.abspath(cache_dir or os.path.join(fo.config.default_dataset_dir, "inficond-caches")),
                        uid)


WRITERS_COLLECTION = "inficond_cache_writers"


def claim_cache(uid, path):
    """Records, before run ``uid``'s cache is written to ``path``, the process that writes it (host,
    pid, start time), so that a later :func:`sweep_caches` finds the cache if that process is killed."""
    process = psutil.Process()
    _writers().insert_one({"_id": uid, "path": path, "host": socket.gethostname(), "pid": process.pid,
                           "started": process.create_time()})


def release_cache(uid):
    """Forgets the writer of run ``uid``'s cache: the run was saved, or its cache removed."""
    _writers().delete_one({"_id": uid})


def sweep_caches(known_uids):
    """Removes the caches (finished or half-written) of trainings killed on this machine: their
    process is gone and their uid is not among ``known_uids()`` (run records and history), read only
    after that check, so that a run saved meanwhile is never taken for a dead one. Returns how many."""
    dead = [doc for doc in _writers().find({"host": socket.gethostname()}) if not _running(doc)]
    known = known_uids() if dead else set()
    removed = 0
    for doc in dead:
        if doc["_id"] not in known:
            for path in [doc["path"], *glob.glob(f"{glob.escape(doc['path'])}.partial-*")]:
                remove_cache(path)
            removed += 1
        release_cache(doc["_id"])
    return removed


def _running(writer):
    try:
        return psutil.Process(writer["pid"]).create_time() == writer["started"]
    except psutil.Error:
        return False


def _writers():
    return database()[WRITERS_COLLECTION]


def cached_training_data(samples, inputs, concepts_field, teacher_field, gt_field, train_tag, split_field,
                         directory):
    """:func:`fiftyone_inficond.students.data.training_data` with the concept vectors written to a
    cache in ``directory`` instead of memory (``concepts`` is the :class:`InputsCache`)."""
    if gt_field is not None:
        require_truth_for(samples, gt_field, inputs.classes)
    cache = cache_inputs(samples, directory, concepts_field, teacher_field, train_tag, split_field)
    try:
        _check_widths(cache, len(inputs.concept_names), len(inputs.classes), concepts_field, teacher_field)
        ids = [sample_id.decode() for sample_id in cache.ids]
        view = samples.exists(concepts_field).exists(teacher_field)
        return _data(cache, ids, view, gt_field, inputs.classes)
    except Exception:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def cached_run_data(samples, key, sample_ids, train, config):
    """The arrays of streamed run ``key``, its concept vectors left in its cache, of its samples that
    still exist, and how many were deleted since (as :func:`fiftyone_inficond.students.data.run_data`)."""
    try:
        cache = InputsCache.open(config["cache"])
    except FileNotFoundError:
        raise RunInputsChanged(
            f"Student run '{key}' reads its concept vectors from '{config['cache']}', which this machine does not "
            f"have: open it where it was trained, or train it again here"
        ) from None
    if [sample_id.decode() for sample_id in cache.ids] != list(sample_ids) or not (cache.train == train).all():
        raise RunInputsChanged(f"The cache of student run '{key}' in '{config['cache']}' is not the one it was trained "
                               f"on: train it again")
    # the run's samples that still exist, from the ids of the whole dataset: a select by a million ids is too
    # long a query; their cached rows stay as they were trained on
    dataset = dataset_of(samples)
    found = np.isin(np.asarray(sample_ids), np.asarray(dataset.values("id")))
    if not found.any():
        raise RunInputsChanged(f"Every sample run '{key}' was trained on was deleted since: train it again")
    if not found.all():
        cache, sample_ids = cache.subset(found), [i for i, kept in zip(sample_ids, found) if kept]
    return _data(cache, list(sample_ids), dataset, config["gt_field"], config["classes"]), int((~found).sum())


def remove_cache(path):
    """Removes a streamed run's cache (nothing for a run in memory, ``None``, or a cache already gone)."""
    if path:
        shutil.rmtree(path, ignore_errors=True)


def drop_cache(samples, config):
    """Removes the cache of a run of the dataset of ``samples`` being deleted or replaced, unless a
    run of another dataset reads it too (a clone's record names its original's cache)."""
    others = {dataset for dataset, uid in run_uids(STUDENTS_METHOD) if uid == config.get("uid")}
    if not others - {dataset_id(samples)}:
        remove_cache(config.get("cache"))


def _check_widths(cache, n_concepts, n_classes, concepts_field, teacher_field):
    if cache.n_concepts != n_concepts or cache.n_classes != n_classes:
        raise InvalidRequest(
            f"'{concepts_field}' or '{teacher_field}' hold vectors of {cache.n_concepts} concepts and "
            f"{cache.n_classes} classes where their runs name {n_concepts} and {n_classes}: compute or import them "
            f"again"
        )
    for _, chunk in cache.chunks("concepts"):
        if not np.isfinite(chunk).all():
            raise InvalidRequest(f"Some samples' concept vectors in '{concepts_field}' hold NaN or infinite values: "
                                 f"compute them again (with overwrite=True)")


def _data(cache, ids, view, gt_field, classes):
    teacher = np.empty((len(cache), cache.n_classes), np.float32)  # filled chunk by chunk: no list of chunks
    for index, chunk in cache.chunks("teacher"):
        teacher[index] = chunk
    if not (np.isfinite(teacher) & (teacher >= 0) & (teacher <= 1)).all():
        raise InvalidRequest("Some samples' teacher scores are not probabilities: import them again "
                             "(with overwrite=True)")
    truth = truth_matrix(labels_in_order(view, ids, gt_field)[0], classes) if gt_field else None
    return DistillationData(ids=ids, concepts=cache, teacher=teacher, truth=truth, train=cache.train.copy())
