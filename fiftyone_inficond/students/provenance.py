"""A student run's provenance: its iterations as stored, the notes written on them, and any
earlier iteration's per-class metrics beside the current ones.

A note belongs to an iteration, not to the moment of a fine-tune: the reason for a change is often
clear only later ("this revert undid the cloud shortcut"), so a note can be written or rewritten on
any revision, with who wrote it and when. Comparing reads what each iteration stored of its
per-class metrics (one small read), not its weights.
"""

import numpy as np
from scipy.special import expit

from fiftyone_inficond import validation
from fiftyone_inficond.errors import StaleRunError
from fiftyone_inficond.students import store
from fiftyone_inficond.students.metrics import ClassMetrics, class_metrics
from fiftyone_inficond.validation import whole_number


class Provenance:
    """The history part of a :class:`~fiftyone_inficond.students.run.StudentRun`: moving to the newest
    revision, saving the next one, reading and annotating them all."""

    @property
    def history(self):
        """Every iteration, oldest first: kind, who, when, instructions, change and metrics: each
        split's in ``splits`` (read one with :func:`~fiftyone_inficond.students.evaluation.entry_metrics`),
        all samples' also as ``metrics_before``, ``metrics_after`` and the tuned ``class_metrics``."""
        return store.list_entries(self.samples, self.uid)

    def reload(self):
        """Moves to the newest stored revision (e.g. after a :class:`StaleRunError`)."""
        if store.run_uid(self.samples, self.key) != self.uid:
            raise StaleRunError(
                f"Student run '{self.key}' was deleted, renamed or trained again since you loaded it: load it again"
            )
        self._load_revision()
        return self

    def _load_revision(self):
        """The newest stored state, with the metrics stored with it."""
        self.revision, self.state, stored = store.load_revision(self.samples, self.key, self.uid)
        self._restore_metrics(stored)

    def _save(self, **info):
        entry = store.append_entry(self.samples, self.key, self.uid, self.revision + 1, self.state, **info)
        self.revision += 1
        return entry

    def newest_revision(self):
        """The newest stored revision (one small read): larger than :attr:`revision` when
        someone saved since this run was loaded."""
        return store.newest_revision(self.samples, self.uid)

    def annotate(self, revision: int, note: str, user: str | None = None) -> None:
        """Writes ``note`` (one line; blank removes it) on stored ``revision``, by ``user``."""
        revision = whole_number(revision, "the revision to write a note on", 0)
        store.set_note(self.samples, self.key, self.uid, revision, validation.note(note), user)

    def revision_metrics(self, revision: int, split: str = "all") -> ClassMetrics:
        """Per-class metrics of stored ``revision`` on ``split``: as it stored them, or computed
        from its weights for an iteration saved without them."""
        revision = whole_number(revision, "the revision to compare", 0)
        if revision == self.revision:
            return self._metrics(split)
        stored = store.load_metrics(self.samples, self.key, self.uid, revision)
        if stored and split in stored:
            return ClassMetrics(**{name: np.asarray(values, dtype=float) for name, values in stored[split].items()})
        rows = self._rows(split)
        truth = None if self.data.truth is None else self.data.truth[rows]
        return class_metrics(self.data.teacher[rows], expit(self.revision_logits(revision)[rows]), truth,
                             self.threshold)

    def compare_classes(self, revision: int, split: str = "all", metric: str = "student_ap") -> list[dict]:
        """Per class, ``metric`` on ``split`` at ``revision`` and now, the largest change first:
        ``[{"class", "then", "now", "change"}]`` (``None`` where a class has no value)."""
        then = self.revision_metrics(revision, split).rows(self.classes)
        now = self._metrics(split).rows(self.classes)
        rows = []
        for before, after in zip(then, now):
            a, b = before[metric], after[metric]
            rows.append({"class": after["class"], "then": a, "now": b,
                         "change": None if a is None or b is None else b - a})
        return sorted(rows, key=lambda row: -abs(row["change"] or 0.0))
