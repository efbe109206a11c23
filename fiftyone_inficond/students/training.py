"""Fitting concept students to teacher probabilities with Lightning, from in-memory tensors
(or, through :func:`fit_batches`, from batches streamed off disk)."""

import contextlib
import contextvars
import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pytorch_lightning as pl
import torch
from scipy.special import logit
from sklearn.metrics import average_precision_score
from torch.utils.data import DataLoader, IterableDataset

from fiftyone_inficond.students.budget import AUTO, PATH_EPOCHS, check_budget, holdout_rows, path_points, pick_budgets
from fiftyone_inficond.students.module import ConceptStudents
from fiftyone_inficond.validation import number, optional_whole_number, whole_number

# Lightning announces the hardware on every fit; tuning fits often, so our fits keep it to warnings.
LIGHTNING_LOGGER = "pytorch_lightning.utilities.rank_zero"
# Lightning 2.6 builds torch's LeafSpec, which torch 2.14 deprecates: a FutureWarning on the first fit
# of every process that says nothing to a user. Only that message, from that Lightning module, is
# silenced, once and for good (a filter set around each fit would race between an App server's threads).
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        category=FutureWarning, module=r"pytorch_lightning\.utilities\._pytree")


# Who hears of the fits in progress (see :func:`reporting`): ``start_stage(name, epochs)``, a context
# manager giving the callable each epoch calls; and, within a stage, that callable.
_STAGE_LISTENER = contextvars.ContextVar("inficond_stage_listener", default=None)
_EPOCH_DONE = contextvars.ContextVar("inficond_epoch_done", default=None)


@contextlib.contextmanager
def reporting(start_stage):
    """Within the block, each stage of fitting (choosing budgets, fitting, retraining) calls
    ``start_stage(name, epochs)`` and each epoch of it calls what that gives, e.g. FiftyOne's
    progress bar's ``update``: this module stays free of FiftyOne, its callers choose the bar."""
    token = _STAGE_LISTENER.set(start_stage)
    try:
        yield
    finally:
        _STAGE_LISTENER.reset(token)


@contextlib.contextmanager
def stage(name, epochs):
    """A stage of ``epochs`` epochs of fitting, reported to the listener of :func:`reporting`, if any."""
    start = _STAGE_LISTENER.get()
    if start is None:
        yield
        return
    with start(name, epochs) as epoch_done:
        token = _EPOCH_DONE.set(epoch_done)
        try:
            yield
        finally:
            _EPOCH_DONE.reset(token)


class _EpochReport(pl.Callback):
    def __init__(self, epoch_done):
        self.epoch_done = epoch_done

    def on_train_epoch_end(self, trainer, module):
        self.epoch_done()


def path_epochs(config, n_points):
    """The epochs of a path of ``n_points`` fits (see :func:`_path`)."""
    return config.epochs + (n_points - 1) * min(PATH_EPOCHS, config.epochs) if n_points else 0


@dataclass
class TrainingConfig:
    """Hyper-parameters of student training (and of each tuning re-training)."""

    epochs: int = 10
    l1: float = 1e-4
    lr: float = 1e-2
    batch_size: int = None  # None: about 20 steps per epoch, between 8 and 512 samples
    seed: int = 0
    budget: object = "auto"  # concepts per student: a number, "auto" (chosen from the data) or None (all)

    def batch_size_for(self, n_samples):
        if self.batch_size is not None:
            return self.batch_size
        return int(np.clip(n_samples // 20, 8, 512))


class TensorBatches(IterableDataset):
    """Shuffled mini-batches sliced from aligned tensors: no per-sample indexing or collation.

    ``rows`` (indices) restricts the batches to those rows without copying them: the batches
    are those of the tensors ``tensor[rows]``, shuffled by the same seeded permutation.
    """

    def __init__(self, *tensors, batch_size, seed, rows=None):
        self.tensors = tensors
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.rows = None if rows is None else torch.as_tensor(np.asarray(rows), dtype=torch.long)

    @property
    def steps_per_epoch(self):  # what a student is pruned over counts in these
        n = len(self.tensors[0]) if self.rows is None else len(self.rows)
        return -(-n // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        n = len(self.tensors[0]) if self.rows is None else len(self.rows)
        order = torch.randperm(n, generator=generator)
        if self.rows is not None:
            order = self.rows[order]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            yield tuple(tensor[rows] for tensor in self.tensors)


MAX_EPOCHS = 1000


def training_config(epochs, l1, lr, batch_size, seed, budget="auto"):
    """A :class:`TrainingConfig` from user values, each checked (Lightning reads ``epochs=-1``
    as "train forever" and ``None`` as 1,000 epochs: both are refused here; a budget's upper
    limit, the number of concepts, is checked where they are known)."""
    return TrainingConfig(
        budget=check_budget(budget),
        epochs=whole_number(epochs, "epochs", 1, MAX_EPOCHS),
        l1=number(l1, "the L1 weight (λ)", 0, 10),
        lr=number(lr, "the learning rate", 0, 10, low_open=True),
        batch_size=optional_whole_number(batch_size, "the batch size", 1, 1_000_000),
        seed=whole_number(seed, "the seed", 0, 2**32 - 1),
    )




CHUNK_ROWS = 4096  # rows per step of every chunked pass over concept vectors: 4096 x 1,153 x 8 B = 38 MB at most


def standardization(concepts, rows=None):
    """Per-concept mean and standard deviation (at least 1e-6) of a concept matrix (of its
    ``rows``: a bool mask or indices), as float32, chunk by chunk so that no copy of the matrix
    is made."""
    rows = np.arange(len(concepts)) if rows is None else np.asarray(rows)
    rows = np.flatnonzero(rows) if rows.dtype == bool else rows
    chunks = (concepts[rows[start : start + CHUNK_ROWS]] for start in range(0, len(rows), CHUNK_ROWS))
    return chunked_standardization(chunks, concepts.shape[1])


def chunked_standardization(chunks, width):
    """Per-column mean and standard deviation (at least 1e-6), float32, of the rows of ``chunks``
    (``(m, width)`` arrays given one at a time: from memory or from disk), accumulated in float64
    with Chan's combination of partial moments."""
    count, mean, m2 = 0, np.zeros(width), np.zeros(width)
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float64)
        n, chunk_mean = len(chunk), chunk.mean(axis=0)
        chunk_m2 = ((chunk - chunk_mean) ** 2).sum(axis=0)
        delta, total = chunk_mean - mean, count + n
        mean, m2, count = mean + delta * n / total, m2 + chunk_m2 + delta**2 * count * n / total, total
    std = np.sqrt(m2 / max(count, 1))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def fit(inputs, targets, weight, bias, lower, upper, config, rows=None, budgets=None):
    """Trains students from the given start and returns ``(weight, bias)`` as numpy arrays.

    Args:
        inputs: ``(n, n_concepts)`` standardized concept vectors: an array, or a row source with
            a ``batches(targets, batch_size, seed, rows)`` method that reads them off disk
            (:class:`fiftyone_inficond.students.cache.CachedInputs`)
        targets: ``(n, k)`` teacher probabilities
        weight, bias, lower, upper: start weights ``(k, n_concepts)``, biases ``(k,)`` and
            weight bounds ``(k, n_concepts)``
        config: a :class:`TrainingConfig`
        rows: train on these rows only (indices; all by default): the same students as
            ``fit(inputs[rows], targets[rows], ...)``, without copying them
        budgets: ``(k,)`` how many concepts each student may use (all by default; see
            :mod:`fiftyone_inficond.students.module`)
    """
    tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    batch_size = config.batch_size_for(len(inputs) if rows is None else len(rows))
    if hasattr(inputs, "batches"):  # rows read off disk (fiftyone_inficond.students.cache.CachedInputs)
        batches = inputs.batches(targets, batch_size, config.seed, rows)
    else:
        batches = TensorBatches(tensor(inputs), tensor(targets), batch_size=batch_size, seed=config.seed, rows=rows)
    return fit_batches(batches, weight, bias, lower, upper, config, budgets)


def fit_batches(batches, weight, bias, lower, upper, config, budgets=None):
    """:func:`fit` from any iterable dataset of ``(inputs, targets)`` float32 batches that says
    its ``steps_per_epoch``, e.g. batches read from disk one at a time
    (:mod:`fiftyone_inficond.students.streaming`)."""
    tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        module = ConceptStudents(
            tensor(weight), tensor(bias), tensor(lower), tensor(upper), l1=config.l1, lr=config.lr, budgets=budgets,
            total_steps=config.epochs * batches.steps_per_epoch,
        )
        module.project()
        epoch_done = _EPOCH_DONE.get()
        with quiet_lightning():
            trainer = pl.Trainer(
                callbacks=[] if epoch_done is None else [_EpochReport(epoch_done)],
                max_epochs=config.epochs,
                accelerator="cpu",
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                deterministic=True,
            )
            trainer.fit(module, DataLoader(batches, batch_size=None))
    return (
        module.linear.weight.detach().numpy().copy(),
        module.linear.bias.detach().numpy().copy(),
    )


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's announcements kept to warnings inside the block, the caller's level restored after
    (importing this module changes no logger: a script's own Lightning keeps what it chose)."""
    logger = logging.getLogger(LIGHTNING_LOGGER)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def class_budgets(inputs, targets, weight, bias, lower, upper, config, threshold, rows=None):
    """``(budgets, path)``: each student's budget under ``config.budget`` (``(k,)`` ints, or
    ``None`` for every concept) and, where it was chosen from the data, the path it was chosen
    on (``{"budgets": [...], "agreement_ap": [...]}``, the mean over classes at each budget);
    arguments as :func:`fit`'s (see :mod:`fiftyone_inficond.students.budget`)."""
    k, n_concepts = np.shape(weight)
    budget = check_budget(config.budget, n_concepts)
    if budget != AUTO:
        return (None if budget is None else np.full(k, budget)), None
    rows = np.arange(len(inputs)) if rows is None else np.asarray(rows)
    fit_rows, held = holdout_rows(rows, config.seed)
    teacher_says = np.asarray(targets)[held] >= threshold
    points = path_points(n_concepts)
    fit_once = _in_memory(inputs, targets, lower, upper, fit_rows)
    with stage("choosing budgets", path_epochs(config, len(points))):
        scores = np.stack([
            _agreement_ap(teacher_says, _logits(inputs, held, weight, bias))
            for weight, bias in _path(fit_once, weight, bias, config, points)
        ], axis=1)
    path = {"budgets": list(points), "agreement_ap": [_mean(column) for column in scores.T]}
    return pick_budgets(points, scores), path


def fit_to_budgets(inputs, targets, weight, bias, lower, upper, config, budgets, rows=None):
    """:func:`fit` down to each class's budget along the path (:data:`budget.PATH`, each point
    warm-started from the last; a class stops at its budget): a support found step by step is
    better than one pruned at once (on a Broden world at 8 concepts, held-out agreement AP
    0.942 against 0.925 for one 10-epoch fit, 0.939 for a 30-epoch one). ``budgets=None``:
    one fit with every concept."""
    return descend(_in_memory(inputs, targets, lower, upper, rows), weight, bias, config, budgets)


def descend(fit_once, weight, bias, config, budgets):
    """:func:`fit_to_budgets` with any ``fit_once(weight, bias, config, budgets) -> (weight,
    bias)``: from memory, or from batches streamed off disk."""
    if budgets is None:
        with stage("fitting", config.epochs):
            return fit_once(weight, bias, config, None)
    budgets = np.asarray(budgets)
    points = [p for p in path_points(np.shape(weight)[1]) if p > budgets.min()] + [int(budgets.min())]
    with stage("fitting", path_epochs(config, len(points))):
        *_, last = _path(fit_once, weight, bias, config, points, floor=budgets)
    return last


def _logits(inputs, rows, weight, bias):
    """``(len(rows), k)`` logits of ``rows`` of the inputs, :data:`CHUNK_ROWS` at a time."""
    return np.concatenate([inputs[rows[start : start + CHUNK_ROWS]] @ weight.T + bias
                           for start in range(0, len(rows), CHUNK_ROWS)] or [np.zeros((0, len(bias)))])


def _in_memory(inputs, targets, lower, upper, rows):
    return lambda weight, bias, config, budgets: fit(inputs, targets, weight, bias, lower, upper, config, rows=rows,
                                                     budgets=budgets)


def _path(fit_once, weight, bias, config, points, floor=None):
    """Yields ``(weight, bias)`` fit at each budget of ``points`` in turn (each class's at least
    its ``floor``), the first for ``config.epochs``, each next warm-started for :data:`PATH_EPOCHS`."""
    for i, point in enumerate(points):
        budgets = np.full(len(bias), point) if floor is None else np.maximum(point, floor)
        epochs = config.epochs if i == 0 else min(PATH_EPOCHS, config.epochs)
        weight, bias = fit_once(weight, bias, replace(config, epochs=epochs), budgets)
        yield weight, bias


def _agreement_ap(teacher_says, logits):
    """``(k,)`` AP of each student's logits against the teacher's decisions (NaN where undefined)."""
    return np.array([
        average_precision_score(says, scores) if 0 < says.sum() < len(says) else np.nan
        for says, scores in zip(teacher_says.T, logits.T)
    ])


def _mean(values):
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def initial_weights(targets, n_concepts, seed):
    """Small seeded random start weights, and biases at the logit of each class's mean
    teacher probability, so training starts from the teacher's base rates."""
    generator = np.random.default_rng(seed)
    weight = generator.normal(0, 0.01, size=(targets.shape[1], n_concepts)).astype(np.float32)
    return weight, start_bias(targets.mean(axis=0))


def start_bias(base_rate):
    """``(k,)`` biases at the logit of each class's mean teacher probability (kept off 0 and 1)."""
    return logit(np.clip(base_rate, 1e-4, 1 - 1e-4)).astype(np.float32)
