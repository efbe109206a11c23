"""A student run's concepts: which decide each class (by weight, or by how their presence separates
the samples the student gets wrong from those it gets right), where each is present, and what
each weight's value would change (what-if curves, without retraining).

:class:`ConceptAnalyses` is a part of :class:`fiftyone_inficond.students.run.StudentRun`: its
methods read the run's standardized ``inputs`` (in memory or on disk), raw concept values
through ``data.concepts``, the teacher's probabilities and the run's ``state``, and compute with
the pure array functions of :mod:`fiftyone_inficond.students.ranking` and
:mod:`fiftyone_inficond.students.whatif`.
"""

import numpy as np
from scipy.special import expit, logit

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.groups import balanced_rows, group_accuracies, presence_threshold, worst
from fiftyone_inficond.students.metrics import GROUPS
from fiftyone_inficond.students.ranking import presence_discrepancy, top_by_discrepancy, top_by_weight
from fiftyone_inficond.students.whatif import weight_range, what_if
from fiftyone_inficond.validation import whole_number

GALLERY = 100  # the most samples a presence view shows by default


def gallery_size(n_rows):
    """How many of ``n_rows`` samples a presence view shows by default: the top quarter, at least
    one, at most :data:`GALLERY`."""
    return min(GALLERY, max(1, -(-n_rows // 4)))


class ConceptAnalyses:
    """Rankings, presence and what-ifs of a run's concepts (see the module's docstring)."""

    def top_concepts(self, cls, n=10, by="weight", sign="positive", among=None):
        """The ``n`` most important concepts of a class (of the concept names ``among``, if
        given) as ``[(name, value), ...]``.

        ``by="weight"`` ranks the concepts the student uses by weight (``sign``: positive,
        negative, absolute; ``among`` may name unused ones, ranked last);
        ``by="positives"``/``"negatives"`` ranks by the presence discrepancy between samples
        the student gets wrong and right among the teacher's positives / negatives.
        """
        column = self._class_index(cls)
        n = whole_number(n, "the number of concepts to show", 1)
        if among is not None:
            kept = {self.concepts[self._concept_index(name)] for name in among}  # known names only
            ranked = self.top_concepts(cls, len(self.concepts), by, sign)
            unused = sorted(kept - {name for name, _ in ranked}, key=self.concepts.index)
            return ([(name, value) for name, value in ranked if name in kept] + [(name, 0.0) for name in unused])[:n]
        if by == "weight":  # of the concepts the student uses: a zero weight decides nothing
            order, values = top_by_weight(self.weight, column, len(self.concepts), sign)
            order, values = order[values != 0][:n], values[values != 0][:n]
        elif by in GROUPS:
            # Of the raw vectors: the inputs' discrepancy scaled back (means commute with it).
            discrepancy = presence_discrepancy(self.inputs, *self._decisions(column))[by] * self._standardization()[1]
            order, values = top_by_discrepancy(discrepancy, n)
        else:
            raise InvalidRequest(f"Rank concepts by 'weight', 'positives' or 'negatives'; got {by!r}")
        return [(self.concepts[j], float(v)) for j, v in zip(order, values)]

    def uses(self, cls):
        """Every concept a class's student uses (a nonzero weight), largest ``|weight|`` first:
        ``[(name, weight), ...]``; the whole of what decides its predictions."""
        row = self.weight[self._class_index(cls)]
        used = np.flatnonzero(row)
        return [(self.concepts[j], float(row[j])) for j in used[np.argsort(-np.abs(row[used]), kind="stable")]]

    def presence(self, cls, concept, split="all"):
        """A concept's presence (its concept-vector value) among the teacher's positives and its
        negatives of a class: ``{"positives": (p,) float32, "negatives": (q,) float32}``."""
        column, j = self._class_index(cls), self._concept_index(concept)
        rows = self._rows(split)
        present = self.data.concepts[rows, j]
        teacher_says = self.data.teacher[rows, column] >= self.threshold
        return {"positives": present[teacher_says], "negatives": present[~teacher_says]}

    def worst_groups(self, cls, concept, split=None):
        """How student and teacher do on the four groups ``cls`` and ``concept`` define on ``split``
        (the held-out one by default): ``{"split", "threshold", "groups", "worst"}``, ``groups`` as
        :func:`fiftyone_inficond.students.groups.group_accuracies`, ``worst`` each one's lowest group
        accuracy; the concept is present from ``threshold`` on (see :mod:`.groups`).

        Raises:
            InvalidRequest: the run has no ground truth to say where the class is
        """
        column, j = self._class_index(cls), self._concept_index(concept)
        if self.data.truth is None:
            raise InvalidRequest(f"Student run '{self.key}' has no ground truth, so its groups cannot be told apart: "
                                 f"train it with a ground-truth field")
        split = self.default_split() if split is None else split
        rows = np.arange(len(self.ids))[self._rows(split)]
        values = self.data.concepts[rows, j]
        threshold = presence_threshold(values)
        rows_of = group_accuracies(self.data.truth[rows, column], self.data.teacher[rows, column] >= self.threshold,
                                   expit(self._class_logits(column)[rows]) >= self.threshold, values >= threshold)
        return {"class": cls, "concept": concept, "split": split, "threshold": threshold, "groups": rows_of,
                "worst": {who: worst(rows_of, who) for who in ("teacher", "student")}}

    def _rebalanced(self, column, concepts):
        """Class ``column``'s training rows resampled over the groups its class and ``concepts`` (any of
        them present) define, and ``(n, 1)`` targets: the mean of the teacher's scores and the truth."""
        rows = np.flatnonzero(self.data.train)
        present = np.zeros(len(rows), dtype=bool)
        for j in concepts:
            values = self.data.concepts[rows, j]
            present |= values >= presence_threshold(values)
        truth = self.data.truth[:, column]
        targets = ((self.data.teacher[:, column] + truth) / 2).astype(np.float32)[:, None]
        return balanced_rows(rows, truth[rows], present, seed=self.training.seed), targets

    def _worst_groups_of(self, pairs):
        """:meth:`worst_groups` of each ``(class, concept)``, none without ground truth."""
        return [] if self.data.truth is None else [self.worst_groups(cls, concept) for cls, concept in pairs]

    def presence_view(self, concept, split="all", n=None):
        """The run's samples of ``split`` where ``concept`` is most present, most first, as a
        FiftyOne view in that order: ``n`` of them, by default the split's top quarter, at most
        :data:`GALLERY` (every sample of a small split, sorted, would say nothing of where the
        concept is)."""
        j = self._concept_index(concept)
        rows = np.arange(len(self.ids))[self._rows(split)]
        order = rows[np.argsort(-self.data.concepts[rows, j], kind="stable")]
        n = gallery_size(len(rows)) if n is None else whole_number(n, "the number of samples to show", 1)
        return fiftyone_api.dataset_of(self.samples).select(np.asarray(self.ids)[order[:n]].tolist(), ordered=True)

    def what_if(self, cls, concepts=None, n=10, n_values=41):
        """Metrics against the teacher as each concept's weight varies, without retraining.

        Args:
            cls: a class name
            concepts: concept names; by default the class's top ``n`` by weight
            n_values: weight values per curve

        Returns:
            JSON-safe ``{"concepts": names, "weights": current weight per concept, "values":
            [c][m] weights tried, "accuracy"|"f1"|"recall"|"precision": [c][m]}``
        """
        column = self._class_index(cls)
        n_values = whole_number(n_values, "the number of what-if values", 2, 1001)
        n = whole_number(n, "the number of concepts", 1, len(self.concepts))
        names = concepts or [name for name, _ in self.top_concepts(cls, n)]
        indices = [self._concept_index(name) for name in names]
        row = self.weight[column]
        values = np.stack([weight_range(row, j, n_values) for j in indices])
        teacher_says = self.data.teacher[:, column] >= self.threshold
        logits = self._class_logits(column)
        curves = what_if(logits, self.inputs, row, indices, teacher_says, values, self.threshold)
        return {
            "concepts": names,
            "weights": row[indices].astype(float).tolist(),
            "values": values.astype(float).tolist(),
            **{metric: curve.astype(float).tolist() for metric, curve in curves.items()},
        }

    def _decisions(self, column):
        teacher_says = self.data.teacher[:, column] >= self.threshold
        student_says = self._class_logits(column) >= logit(self.threshold)
        return teacher_says, student_says
