"""Students trained in memory bounded by one mini-batch, not by the dataset.

The in-memory path (:mod:`fiftyone_inficond.students.run`) reads every concept vector into one
float32 matrix: 100,000 samples x 1,153 concepts is 0.46 GB, twice that once standardized, and it
grows with the dataset. This path never holds more than a batch of rows:

1. :func:`cache_inputs` streams the samples that have concepts and teacher scores out of MongoDB
   through one cursor (one document at a time, a chunk of rows buffered) and appends their rows
   to two matrices on disk: concept vectors as float16 by default (CLIP similarities lie in
   [-1, 1], where float16 keeps about 3 significant digits: the weights trained from them stay
   within ~1e-3 of float32 ones), teacher probabilities as float32.
2. :func:`standardization` computes the per-concept mean and standard deviation of the training
   rows chunk by chunk (float64, Chan's pairwise combination), as the in-memory path does at once.
3. :func:`fit_streamed` trains exactly as :func:`fiftyone_inficond.students.training.fit` does
   (the same seeded permutation of the training rows every epoch, the same batches, the same
   module), each batch read from disk and standardized on the fly. With a float32 cache and the
   same mean and std its weights are the in-memory ones.
4. :func:`streamed_agreement` aggregates student-vs-teacher counts per class batch by batch, and
   :func:`streamed_agreement_ap` the agreement AP over binned thresholds (constant memory).

Rows are read with ``pread`` into buffers of a batch's size, never through a memory map: a map
keeps resident every page (on recent kernels, every file folio) it was read through, which grows
with the file rather than with the batch.
"""

import json
import os
import shutil
import uuid
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit, logit
from torch.utils.data import IterableDataset

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.errors import InficondError, InvalidRequest, WriteFailed
from fiftyone_inficond.students.budget import AUTO, check_budget
from fiftyone_inficond.students.data import read_inputs
from fiftyone_inficond.students.training import (
    TrainingConfig,
    chunked_standardization,
    descend,
    fit_batches,
    initial_weights,
    start_bias,
)
from fiftyone_inficond.students.tuning import no_bounds

CHUNK_ROWS = 4096  # rows buffered while caching or standardizing: 4096 x 1,153 x 4 B = 19 MB
STREAMED_AUTO = 24  # concepts per student for budget="auto": a path's typical choice on Broden worlds is fewer
_FILES = {"concepts": "concepts.bin", "teacher": "teacher.bin"}


@dataclass
class InputsCache:
    """Concept vectors and teacher probabilities of ``n`` samples, as two row-major matrices on disk.

    Attributes:
        directory: where ``concepts.bin``, ``teacher.bin`` and ``cache.json`` lie
        ids: ``(n,)`` sample ids (24-byte ASCII), row order
        train: ``(n,)`` bool, the rows students are trained on
        n_concepts, n_classes: the matrices' widths
        dtype: the concepts' dtype on disk (``"float16"`` or ``"float32"``)
    """

    directory: str
    ids: np.ndarray
    train: np.ndarray
    n_concepts: int
    n_classes: int
    dtype: str = "float16"

    def __len__(self):
        return len(self.ids)

    def _shape(self, name):
        return (len(self), self.n_concepts if name == "concepts" else self.n_classes)

    def _dtype(self, name):
        return np.dtype(self.dtype if name == "concepts" else "float32")

    def rows(self, name, index):
        """``(len(index), width)`` float32 copy of rows ``index`` of matrix ``name``.

        Read with ``pread`` into a buffer of the rows' size (one read for consecutive rows, one
        per row otherwise): a memory map would map a whole file folio into the process for every
        row it touches, up to hundreds of MB per batch of random rows."""
        index = np.asarray(index, dtype=np.int64)
        width, dtype = self._shape(name)[1], self._dtype(name)
        out = np.empty((len(index), width), dtype=dtype)
        if len(index) == 0:
            return out.astype(np.float32)
        row_bytes = width * dtype.itemsize
        buffer = memoryview(out).cast("B")
        with open(os.path.join(self.directory, _FILES[name]), "rb", buffering=0) as file:
            if index[-1] - index[0] == len(index) - 1 and (len(index) == 1 or (np.diff(index) == 1).all()):
                _read_into(file.fileno(), buffer, int(index[0]) * row_bytes)
            else:
                for i, row in enumerate(index.tolist()):
                    _read_into(file.fileno(), buffer[i * row_bytes : (i + 1) * row_bytes], row * row_bytes)
        return out.astype(np.float32, copy=False)

    def chunks(self, name, rows=None, size=CHUNK_ROWS):
        """Yields ``(row indices, float32 rows)`` of ``rows`` (all by default), ``size`` at a time."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        for start in range(0, len(rows), size):
            index = rows[start : start + size]
            yield index, self.rows(name, index)

    def save(self):
        meta = dict(n_concepts=self.n_concepts, n_classes=self.n_classes, dtype=self.dtype, n=len(self))
        np.save(os.path.join(self.directory, "ids.npy"), self.ids)
        np.save(os.path.join(self.directory, "train.npy"), self.train)
        with open(os.path.join(self.directory, "cache.json"), "w") as file:
            json.dump(meta, file)

    @classmethod
    def open(cls, directory):
        """A cache written by :func:`cache_inputs` or :func:`write_cache`."""
        with open(os.path.join(directory, "cache.json")) as file:
            meta = json.load(file)
        return cls(directory, np.load(os.path.join(directory, "ids.npy")),
                   np.load(os.path.join(directory, "train.npy")),
                   meta["n_concepts"], meta["n_classes"], meta["dtype"])


def _read_into(fd, buffer, offset):
    """Fills ``buffer`` from file ``fd`` at ``offset`` (``pread`` may return less than asked)."""
    done = 0
    while done < len(buffer):
        n = os.preadv(fd, [buffer[done:]], offset + done)
        if n == 0:
            raise InvalidRequest("The training cache is shorter than its description: write it again")
        done += n


class _Writer:
    """Appends rows to the two matrices of a cache, one chunk at a time (plain writes, no map), in
    a staging directory beside ``directory`` that replaces it only once everything is written."""

    def __init__(self, directory, dtype):
        self.directory, self.dtype = os.path.abspath(directory), np.dtype(dtype)
        if os.path.isdir(self.directory) and os.listdir(self.directory) and not _is_cache(self.directory):
            raise InvalidRequest(f"'{directory}' holds other files: give an empty or new directory for the cache")
        self.staging = f"{self.directory}.partial-{uuid.uuid4().hex[:8]}"
        os.makedirs(self.staging)
        self.files = {}
        self.files = {name: open(os.path.join(self.staging, path), "wb") for name, path in _FILES.items()}
        self.ids, self.train, self.widths = [], [], None

    def write(self, ids, concepts, teacher, train):
        concepts, teacher = np.asarray(concepts), np.asarray(teacher)
        widths = (concepts.shape[1], teacher.shape[1])
        if self.widths is not None and widths != self.widths:
            raise InvalidRequest(f"Rows of different widths {widths} and {self.widths} cannot share a cache")
        self.widths = widths
        self.files["concepts"].write(np.ascontiguousarray(concepts, self.dtype).tobytes())
        self.files["teacher"].write(np.ascontiguousarray(teacher, np.float32).tobytes())
        self.ids.append(np.asarray(ids, dtype="S24"))
        self.train.append(np.asarray(train, dtype=bool))

    def finish(self):
        for file in self.files.values():
            file.close()
        if self.widths is None:
            raise InvalidRequest("Nothing to cache: no sample has both concepts and teacher scores")
        cache = InputsCache(self.staging, np.concatenate(self.ids), np.concatenate(self.train),
                            self.widths[0], self.widths[1], self.dtype.name)
        cache.save()
        old = f"{self.staging}.old"
        if os.path.exists(self.directory):
            os.rename(self.directory, old)  # an empty directory or an older cache
        os.rename(self.staging, self.directory)
        shutil.rmtree(old, ignore_errors=True)
        cache.directory = self.directory
        return cache

    def abort(self):
        for file in self.files.values():
            try:
                file.close()
            except OSError:  # the failed write may fail again on flush
                pass
        shutil.rmtree(self.staging, ignore_errors=True)


def _is_cache(directory):
    return os.path.exists(os.path.join(directory, "cache.json"))


def write_cache(directory, chunks, dtype="float16"):
    """A cache from an iterable of ``(ids, concepts, teacher, train)`` chunks (e.g. synthetic data).

    All or nothing: rows are written beside ``directory``, which an older cache there is replaced
    by only once every row is on disk; a full disk or a refused write raises :class:`WriteFailed`
    and leaves ``directory`` as it was.
    """
    writer = None
    try:
        writer = _Writer(directory, dtype)
        for chunk in chunks:
            writer.write(*chunk)
        return writer.finish()
    except InficondError:
        if writer is not None:
            writer.abort()
        raise
    except OSError as error:
        if writer is not None:
            writer.abort()
        raise WriteFailed(
            f"Cannot write the training cache to '{directory}' ({error.strerror or error}): nothing was "
            f"written there; free some space or choose another directory"
        ) from error
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def cache_inputs(samples, directory, concepts_field="concepts", teacher_field="teacher", train_tag=None,
                 split_field=None, dtype="float16", chunk_rows=CHUNK_ROWS):
    """Streams the concept vectors and teacher scores of the samples of ``samples`` that have
    both into a cache in ``directory``, ``chunk_rows`` rows buffered at a time.

    The training split is as in :func:`fiftyone_inficond.students.data.train_mask`.

    Returns:
        an :class:`InputsCache`
    """
    if train_tag is not None and split_field is not None:
        raise InvalidRequest("Give train_tag or split_field, not both")
    if split_field is not None and not samples.has_field(split_field):
        raise InvalidRequest(f"The dataset has no field '{split_field}' to split by")
    read_inputs(samples, concepts_field, teacher_field)  # both runs exist and are complete
    extra = ["tags"] if train_tag is not None else [split_field] if split_field is not None else []
    usable = samples.exists(concepts_field).exists(teacher_field)

    def train_of(doc):
        if train_tag is not None:
            return train_tag in (doc.get("tags") or [])
        return split_field is None or doc.get(split_field) == "train"

    def chunks():
        buffer = []
        stopped = lambda: "The database stopped answering while the training cache was read: run it again"  # noqa: E731
        with fiftyone_api.database_errors(stopped):
            for doc in fiftyone_api.stream_documents(usable, [concepts_field, teacher_field, *extra]):
                buffer.append(doc)
                if len(buffer) == chunk_rows:
                    yield _chunk(buffer, concepts_field, teacher_field, train_of)
                    buffer = []
        if buffer:
            yield _chunk(buffer, concepts_field, teacher_field, train_of)

    cache = write_cache(directory, chunks(), dtype)
    if not cache.train.any():
        raise InvalidRequest("The training split is empty: tag some samples for training")
    return cache


def _chunk(docs, concepts_field, teacher_field, train_of):
    decode = fiftyone_api.decode_array
    return (
        [str(doc["_id"]) for doc in docs],
        np.stack([decode(doc[concepts_field]) for doc in docs]),
        np.stack([decode(doc[teacher_field]) for doc in docs]),
        [train_of(doc) for doc in docs],
    )


def standardization(cache, rows=None):
    """Per-concept mean and standard deviation (at least 1e-6) of ``rows`` (the training rows by
    default), chunk by chunk off the disk: float32 results as
    :func:`fiftyone_inficond.students.training.standardization`."""
    rows = np.flatnonzero(cache.train) if rows is None else rows
    return chunked_standardization((chunk for _, chunk in cache.chunks("concepts", rows)), cache.n_concepts)


class DiskBatches(IterableDataset):
    """:class:`fiftyone_inficond.students.training.TensorBatches` over rows of a cache: the same
    permutation per epoch and seed, each batch read from disk and standardized when it is needed."""

    def __init__(self, cache, rows, mean, std, batch_size, seed, columns=None):
        self.cache, self.rows = cache, np.asarray(rows)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.columns = columns

    @property
    def steps_per_epoch(self):
        return -(-len(self.rows) // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.rows), generator=generator).numpy()
        for start in range(0, len(order), self.batch_size):
            picked = self.rows[order[start : start + self.batch_size]]
            inputs = (self.cache.rows("concepts", picked) - self.mean) / self.std
            targets = self.cache.rows("teacher", picked)
            if self.columns is not None:
                targets = np.ascontiguousarray(targets[:, self.columns])
            yield torch.from_numpy(inputs), torch.from_numpy(targets)


@dataclass
class StreamedStudents:
    """Students trained by :func:`fit_streamed`: ``weight (k, n_concepts)``, ``bias (k,)`` and
    the standardization ``mean``, ``std`` they expect."""

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def base_rates(cache, rows):
    """``(k,)`` mean teacher probability of ``rows``, chunk by chunk."""
    total = np.zeros(cache.n_classes)
    for _, chunk in cache.chunks("teacher", rows):
        total += chunk.sum(axis=0, dtype=np.float64)
    return (total / len(rows)).astype(np.float32)


def fit_streamed(cache, config=None, weight=None, bias=None, lower=None, upper=None, mean=None, std=None):
    """Trains students on the training rows of ``cache`` in memory bounded by one batch.

    Each student uses at most ``config.budget`` concepts, reached along the same path as in
    memory (:func:`fiftyone_inficond.students.training.fit_to_budgets`); ``"auto"`` is
    :data:`STREAMED_AUTO` here (choosing on a path needs its held-out rows in memory).

    Starts, like :func:`fiftyone_inficond.students.registry.train_students`, from
    :func:`fiftyone_inficond.students.training.initial_weights` unless ``weight`` and ``bias``
    are given; ``lower``/``upper`` bound the weights (none by default); ``mean``/``std`` default
    to :func:`standardization` of the training rows.

    Returns:
        a :class:`StreamedStudents`
    """
    config = config or TrainingConfig()
    rows = np.flatnonzero(cache.train)
    if mean is None or std is None:
        mean, std = standardization(cache, rows)
    if weight is None or bias is None:
        start_weight, _ = initial_weights(np.zeros((1, cache.n_classes)), cache.n_concepts, config.seed)
        weight = start_weight if weight is None else weight
        bias = start_bias(base_rates(cache, rows)) if bias is None else bias
    if lower is None or upper is None:
        lower, upper = no_bounds(np.shape(weight))
    budget = STREAMED_AUTO if config.budget == AUTO else check_budget(config.budget, cache.n_concepts)
    budgets = None if budget is None else np.full(len(bias), min(budget, cache.n_concepts))

    def fit_once(weight, bias, config, budgets):  # each fit its own batches: the same permutations as in memory
        batches = DiskBatches(cache, rows, mean, std, config.batch_size_for(len(rows)), config.seed)
        return fit_batches(batches, weight, bias, lower, upper, config, budgets)

    weight, bias = descend(fit_once, np.clip(weight, lower, upper), bias, config, budgets)
    return StreamedStudents(weight, bias, mean, std)


def _student_logits(cache, students, rows, batch_rows):
    """``(student logits (m, k), teacher probabilities (m, k))`` of ``rows`` (all by default), chunk by chunk."""
    for index, concepts in cache.chunks("concepts", rows, batch_rows):
        logits = ((concepts - students.mean) / students.std) @ students.weight.T + students.bias
        yield logits, cache.rows("teacher", index)


def streamed_agreement(cache, students, threshold=0.5, rows=None, batch_rows=CHUNK_ROWS):
    """Teacher-vs-student confusion counts per class, aggregated batch by batch.

    Returns:
        ``{"tp", "fp", "fn", "tn": (k,) int64}`` with the teacher's decisions as truth
    """
    counts = {name: np.zeros(cache.n_classes, np.int64) for name in ("tp", "fp", "fn", "tn")}
    cut = logit(threshold)
    for logits, teacher in _student_logits(cache, students, rows, batch_rows):
        student, teacher = logits >= cut, teacher >= threshold
        counts["tp"] += (student & teacher).sum(axis=0)
        counts["fp"] += (student & ~teacher).sum(axis=0)
        counts["fn"] += (~student & teacher).sum(axis=0)
        counts["tn"] += (~student & ~teacher).sum(axis=0)
    return counts


def streamed_agreement_ap(cache, students, threshold=0.5, rows=None, bins=1001, batch_rows=CHUNK_ROWS):
    """Per class, the average precision of the student's probabilities against the teacher's
    decisions (the panels' agreement AP), aggregated batch by batch.

    Probabilities are counted into ``bins`` equal bins per class, the teacher's positives and
    negatives apart, so memory is ``2 x k x bins`` counts whatever the number of rows; the AP is
    sklearn's over the bins' lower edges (tested within 0.01 of the exact one at 1001 bins).
    (torchmetrics' binned AP does the same, but under the deterministic algorithms Lightning
    turns on it counts through a ``rows x k x bins`` matrix: 51 GB for a batch of 64.)

    Returns:
        ``(k,)`` float64, NaN for classes the teacher never calls positive (as the panels show them)
    """
    k = cache.n_classes
    counts = {True: np.zeros(k * bins, np.int64), False: np.zeros(k * bins, np.int64)}
    offsets = np.arange(k) * bins
    for logits, teacher in _student_logits(cache, students, rows, batch_rows):
        cells = np.minimum((expit(logits) * (bins - 1)).astype(np.int64), bins - 1) + offsets
        decisions = teacher >= threshold
        counts[True] += np.bincount(cells[decisions], minlength=k * bins)
        counts[False] += np.bincount(cells[~decisions], minlength=k * bins)
    return binned_average_precision(counts[True].reshape(k, bins), counts[False].reshape(k, bins))


def binned_average_precision(positives, negatives):
    """Average precision per row from score histograms.

    Args:
        positives, negatives: ``(k, bins)`` counts of positive and negative samples whose score
            falls in each bin, lowest scores first

    Returns:
        ``(k,)``: sum over thresholds (each bin's lower edge, highest first) of the recall gained
        times the precision there, as sklearn's ``average_precision_score``; NaN without positives
    """
    tp = np.cumsum(positives[:, ::-1], axis=1)[:, ::-1]  # at bin i's edge: positives scoring in bins >= i
    fp = np.cumsum(negatives[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / tp[:, :1]
        precision = tp / np.maximum(tp + fp, 1)
    gained = recall - np.concatenate([recall[:, 1:], np.zeros((len(recall), 1))], axis=1)
    return (gained * precision).sum(axis=1)
