"""A student run's evaluation: per split, each class's metrics against the teacher and the ground
truth, and the agreement subsets behind them (as counts, sample ids and views).

:class:`Evaluation` is a part of :class:`fiftyone_inficond.students.run.StudentRun`: its methods
read the run's ``data`` (teacher probabilities, ground truth, the training mask), its logits
(:meth:`~fiftyone_inficond.students.run.StudentRun.logits`) and its ``state``, and compute with
the pure array functions of :mod:`fiftyone_inficond.students.metrics`, a few classes at a time
(at 1M samples x 80 classes, one (n, k) float32 copy is 320 MB, and sklearn's AP makes float64 ones).
"""

from dataclasses import fields
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.budget import usage
from fiftyone_inficond.students.metrics import (
    GROUPS,
    SUBSETS,
    ClassMetrics,
    agreement_counts,
    agreement_subsets,
    class_metrics,
)

if TYPE_CHECKING:
    import pandas  # imported where a table is asked for: the App never asks

CLASS_BLOCK = 8  # classes per step of a metrics pass: (n, 8) copies of the probabilities, never (n, k)
SPLITS = {"validation": "held-out samples", "train": "training samples", "all": "all samples"}  # in words


class Evaluation:
    """Metrics and agreement subsets of a run's students, per split (see the module's docstring)."""

    @property
    def splits(self):
        """The splits metrics can be shown for, the held-out one first when there is one."""
        return ["all"] if self.data.train.all() else ["validation", "train", "all"]

    def _restore_metrics(self, stored):
        """Takes the metrics a history entry stored for the run's state (:func:`stored_metrics`;
        ``None`` from an entry saved without them) instead of computing them again; not once samples
        it was measured on were deleted."""
        if self.samples_deleted:
            return
        for split, values in (stored or {}).items():
            if split in self.splits:
                metrics = ClassMetrics(**{name: np.asarray(v, dtype=float) for name, v in values.items()})
                self._metrics_cache[split] = (self.state, metrics)

    def _split_metrics(self):
        """Every split's metrics now: ``{split: ClassMetrics}`` (each cached, see :meth:`_metrics`)."""
        return {split: self._metrics(split) for split in self.splits}

    def _rows(self, split):
        # Without a split every row trains: a slice avoids copying the whole matrix.
        train = slice(None) if self.data.train.all() else self.data.train
        splits = {"all": slice(None), "train": train, "validation": ~self.data.train}
        if split not in splits:
            raise InvalidRequest(f"split must be one of {sorted(splits)}; got '{split}'")
        if split == "validation" and self.data.train.all():
            raise InvalidRequest(
                f"Student run '{self.key}' has no validation split: train with train_tag or split_field"
            )
        return splits[split]

    def _metrics(self, split="all", columns=None):
        """Metrics of all classes, or of ``columns`` only; cached per state and split."""
        cached = self._metrics_cache.get(split)
        if columns is None and cached is not None and cached[0] is self.state:
            return cached[1]
        rows = self._rows(split)
        metrics = ClassMetrics.concatenate([class_metrics(*self._block(rows, block), self.threshold)
                                            for block in self._blocks(columns)])
        if columns is None:
            self._metrics_cache[split] = (self.state, metrics)
        return metrics

    def _blocks(self, columns=None):
        """``columns`` (every class by default), :data:`CLASS_BLOCK` at a time."""
        columns = np.arange(len(self.classes)) if columns is None else np.asarray(columns)
        return [columns[start : start + CLASS_BLOCK] for start in range(0, len(columns), CLASS_BLOCK)]

    def _block(self, rows, block):
        """``(teacher, student, truth)`` probabilities and truth of ``rows`` for the classes
        ``block``: ``(m, len(block))`` each, truth ``None`` without a ground truth."""
        truth = None if self.data.truth is None else self.data.truth[:, block][rows]
        return self.data.teacher[:, block][rows], expit(self.logits(rows, block)), truth

    def performance(self, split="all", sort_by=None):
        """Per-class metrics (rows of dicts, worst first when ``sort_by`` is given) and their means.

        Returns:
            ``{"classes": [...], "summary": {...}}``
        """
        metrics = self._metrics(split)
        rows = metrics.rows(self.classes)
        if sort_by is not None:
            rows = [rows[j] for j in metrics.order(sort_by)]
        return {"classes": rows, "summary": metrics.summary()}

    def default_split(self):
        """The split a table shows unless told: the held-out one when there is one."""
        return self.splits[0]

    def to_pandas(self, split: str | None = None) -> "pandas.DataFrame":
        """Per-class metrics on ``split`` (the held-out one by default) as a DataFrame indexed by
        class, with how many concepts each student uses; ``attrs["split"]`` names the split."""
        import pandas as pd

        split = split or self.default_split()
        frame = pd.DataFrame(self._metrics(split).rows(self.classes)).set_index("class").astype(float)
        frame["concepts_used"] = usage(self.weight)
        frame.attrs["split"] = split
        return frame

    def report(self, split: str | None = None, digits: int = 3) -> str:
        """A per-class table like scikit-learn's classification report, the split named: each
        class's APs against the ground truth, its agreement with the teacher, the concepts it uses,
        and the means over classes."""
        frame = self.to_pandas(split)
        frame.loc["mean"] = frame.mean(numeric_only=True)
        split = frame.attrs["split"]
        title = (f"Student run '{self.key}', revision {self.revision}: {SPLITS[split]} "
                 f"({self.split_size(split)} of {len(self.ids)})")
        table = frame.rename_axis(None).to_string(float_format=lambda value: f"{value:.{digits}f}", na_rep="-")
        return f"{title}\n{table}"

    def __repr__(self):
        """One line a notebook prints: what the run is, its revision, and the mean APs on the split
        a table shows when they are already known (a repr never starts a metrics pass)."""
        split = self.default_split()
        train = int(self.data.train.sum())
        text = (f"<StudentRun '{self.key}' of dataset '{fiftyone_api.dataset_of(self.samples).name}': "
                f"{len(self.classes)} classes over {len(self.concepts)} concepts, revision {self.revision}, "
                f"{train} training samples of {len(self.ids)}")
        cached = self._metrics_cache.get(split)
        if cached is not None and cached[0] is self.state:
            means = cached[1].summary()
            text += (f"; mean AP student {_figure(means['student_ap'])}, teacher {_figure(means['teacher_ap'])} "
                     f"({SPLITS[split]})")
        return text + ">"

    def _repr_html_(self):
        """A notebook's view: the one-line summary above the per-class table (:meth:`to_pandas`)."""
        import html

        return f"<p>{html.escape(repr(self))}</p>{self.to_pandas().to_html(float_format='{:.3f}'.format, na_rep='-')}"

    def agreement(self, cls, split="all"):
        """Sample ids of the four agreement subsets of a class among its positives and its
        negatives: ``{"positives": {"both_right": [ids], ...}, "negatives": {...}}``."""
        column = self._class_index(cls)
        rows = np.arange(len(self.ids))[self._rows(split)]
        truth = None if self.data.truth is None else self.data.truth[rows, column]
        student = expit(self._class_logits(column)[rows])
        subsets = agreement_subsets(self.data.teacher[rows, column], student, truth, self.threshold)
        ids = np.asarray(self.ids)[rows]
        return {
            group: {name: ids[members].tolist() for name, members in named.items()}
            for group, named in subsets.items()
        }

    def agreement_counts(self, split="all"):
        """Sizes of every class's agreement subsets at once, for the performance table:
        ``{class: {"positives": {"both_right": n, ...}, "negatives": {...}}}``."""
        rows = self._rows(split)
        parts = [agreement_counts(*self._block(rows, block), self.threshold) for block in self._blocks()]
        counts = {group: {subset: np.concatenate([part[group][subset] for part in parts]) for subset in SUBSETS}
                  for group in GROUPS}
        return {
            name: {group: {subset: int(values[j]) for subset, values in named.items()}
                   for group, named in counts.items()}
            for j, name in enumerate(self.classes)
        }

    def agreement_view(self, cls, group, subset, split="all"):
        """The samples of one agreement subset as a FiftyOne view (e.g. for the App's grid)."""
        if group not in GROUPS or subset not in SUBSETS:
            raise InvalidRequest(f"An agreement subset is one of {GROUPS} and one of {SUBSETS}; "
                                 f"got {group!r}, {subset!r}")
        ids = self.agreement(cls, split)[group][subset]
        return fiftyone_api.dataset_of(self.samples).select(ids, ordered=True)

    def split_size(self, split="all"):
        """How many of the run's samples ``split`` holds."""
        return len(np.arange(len(self.ids))[self._rows(split)])


def split_record(classes, after, before=None, columns=()):
    """What a history entry keeps of its metrics, per split: ``{split: {"after": means, "before":
    means, "classes": {class: {"before": row, "after": row}}}}``, "before" with ``before`` (a tune, a
    revert) and "classes" for the class indices ``columns`` (those a tune retrained).

    ``after``, ``before``: ``{split: ClassMetrics}`` of the same splits.
    """
    record = {}
    for split, metrics in after.items():
        record[split] = {"after": metrics.summary()}
        if before is not None:
            record[split]["before"] = before[split].summary()
        if len(columns):
            rows_before, rows_after = before[split].rows(classes), metrics.rows(classes)
            record[split]["classes"] = {classes[j]: {"before": rows_before[j], "after": rows_after[j]}
                                        for j in columns}
    return record


def stored_metrics(metrics):
    """What a history entry stores of ``{split: ClassMetrics}``, read back by
    :meth:`Evaluation._restore_metrics`: ``{split: {metric: [value per class]}}``."""
    return {split: {field.name: getattr(values, field.name).tolist() for field in fields(values)}
            for split, values in metrics.items()}


def entry_metrics(entry, split):
    """A history entry's metrics on ``split`` (as :func:`split_record` keeps them); an entry saved
    before per-split records has them for all samples only, and nothing for another split."""
    if "splits" in entry:
        return entry["splits"].get(split, {})
    if split != "all":
        return {}
    kept = {"after": entry.get("metrics_after"), "before": entry.get("metrics_before"),
            "classes": entry.get("class_metrics")}
    return {name: value for name, value in kept.items() if value is not None}


def _figure(value):
    return "-" if value is None else f"{value:.3f}"
