"""The disk cache of a run's inputs: concept vectors and teacher probabilities as two row-major
matrices on disk, so that a run need not hold its concept vectors in memory.

:func:`cache_inputs` streams the samples that have concepts and teacher scores out of MongoDB
through one cursor (one document at a time, a chunk of rows buffered) and appends their rows to
the two matrices: concept vectors as float16 by default (CLIP similarities lie in [-1, 1], where
float16 keeps about 3 significant digits: the weights trained from them stay within ~1e-3 of
float32 ones), teacher probabilities as float32. :class:`CachedInputs` reads them back
standardized, indexed like the matrix a run holds in memory.

Rows are read with ``pread`` into buffers of a batch's size, never through a memory map: a map
keeps resident every page (on recent kernels, every file folio) it was read through, which grows
with the file rather than with the batch.
"""

import dataclasses
import json
import os
import shutil
import uuid
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.errors import InficondError, InvalidRequest, WriteFailed
from fiftyone_inficond.students.data import check_training_split, read_inputs
from fiftyone_inficond.students.training import CHUNK_ROWS

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
    file_rows: np.ndarray = None  # the rows of the files this cache presents, in order (None: all)

    def __len__(self):
        return len(self.ids)

    def subset(self, rows):
        """The same files presenting only ``rows`` (indices or a bool mask), e.g. the samples of a
        run that still exist: nothing is copied or written."""
        file_rows = np.arange(len(self)) if self.file_rows is None else self.file_rows
        return dataclasses.replace(self, ids=self.ids[rows], train=self.train[rows], file_rows=file_rows[rows])

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
        if self.file_rows is not None:
            index = self.file_rows[index]
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
    check_training_split(cache.train)
    return cache


def _chunk(docs, concepts_field, teacher_field, train_of):
    decode = fiftyone_api.decode_array
    return (
        [str(doc["_id"]) for doc in docs],
        np.stack([decode(doc[concepts_field]) for doc in docs]),
        np.stack([decode(doc[teacher_field]) for doc in docs]),
        [train_of(doc) for doc in docs],
    )


class CachedInputs:
    """The standardized concept vectors of a cache, ``(rows - mean) / std`` as float32, indexed
    like the ``(n, n_concepts)`` matrix a run holds in memory: by rows (a slice, indices or a bool
    mask) or by rows and columns, only what is asked for read off disk, :data:`CHUNK_ROWS` rows at a
    time. The whole matrix at once (``np.asarray``) is refused: that is what a cache exists not to
    hold. A run's row source, as an array is (see :meth:`batches`)."""

    def __init__(self, cache, mean, std):
        self.cache = cache
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.shape, self.dtype = (len(cache), cache.n_concepts), np.dtype(np.float32)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        rows, columns = key if isinstance(key, tuple) else (key, slice(None))
        index = np.arange(len(self))[rows]
        if index.ndim == 0:
            return self[index[None], columns][0]
        picked = np.empty((0, self.shape[1]), np.float32)[:, columns].shape[1:]  # () for one column
        out = np.empty((len(index), *picked), np.float32)
        for start in range(0, len(index), CHUNK_ROWS):
            part = index[start : start + CHUNK_ROWS]
            out[start : start + len(part)] = ((self.cache.rows("concepts", part) - self.mean) / self.std)[:, columns]
        return out

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Cached concept vectors are read in rows or columns, not as one matrix: index them")

    def batches(self, targets, batch_size, seed, rows=None):
        """:class:`DiskBatches` of ``rows`` (all by default) with ``targets`` (``(n, k)`` in memory,
        or ``None``: the cache's teacher probabilities)."""
        return DiskBatches(self, targets, np.arange(len(self)) if rows is None else rows, batch_size, seed)


class DiskBatches(IterableDataset):
    """:class:`fiftyone_inficond.students.training.TensorBatches` over the rows of
    :class:`CachedInputs`: the same permutation per epoch and seed, each batch read off disk and
    standardized when it is needed."""

    def __init__(self, inputs, targets, rows, batch_size, seed):
        self.inputs, self.targets, self.rows = inputs, targets, np.asarray(rows)
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0

    @property
    def steps_per_epoch(self):
        return -(-len(self.rows) // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.rows), generator=generator).numpy()
        for start in range(0, len(order), self.batch_size):
            picked = self.rows[order[start : start + self.batch_size]]
            targets = (self.inputs.cache.rows("teacher", picked) if self.targets is None
                       else np.ascontiguousarray(self.targets[picked], dtype=np.float32))
            yield torch.from_numpy(self.inputs[picked]), torch.from_numpy(targets)
