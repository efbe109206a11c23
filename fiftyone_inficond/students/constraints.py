"""What each class's student may use, as a run holds it: the concepts left out because they name a
class, each class's budget (as trained, or as a fine-tune changed it), the synonym groups a 👍/👎
acts on together, and the concepts a bound holds. A mixin of
:class:`~fiftyone_inficond.students.run.StudentRun`, which gives it ``config``, ``state``,
``classes``, ``concepts``, ``synonym_groups`` and the name lookups.
"""

import numpy as np

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.synonyms import group_of
from fiftyone_inficond.validation import whole_number


class Constraints:
    @property
    def left_out(self):
        """``{concept: class}``: the concepts no student may use because they name a class."""
        return {item["concept"]: item["class"] for item in self.config.get("left_out", [])}

    def budget_of(self, cls):
        """How many concepts a class's student may use (``None``: every concept)."""
        budgets = self._budgets()
        return None if budgets is None else int(budgets[self._class_index(cls)])

    def allowed(self, cls):
        """How many concepts a class's student may use now, every concept where it has no budget."""
        return self.budget_of(cls) or len(self.concepts)

    def _budgets(self):
        """``(k,)`` each class's budget now: as tuned (:meth:`tune` ``budgets=``), else as trained."""
        if self.state is not None and self.state.budgets is not None:
            return self.state.budgets
        budgets = self.config.get("class_budgets")
        return None if budgets is None else np.asarray(budgets, dtype=np.int64)

    def _budget_changes(self, budgets):
        """``(k,)`` budgets after ``budgets`` (``{class: n}``) and the classes whose budget changed;
        a run trained with every concept allowed starts from that number."""
        now = self._budgets()
        now = np.full(len(self.classes), len(self.concepts), dtype=np.int64) if now is None else now.copy()
        if budgets is None:
            return None, []
        if not isinstance(budgets, dict):
            raise InvalidRequest(f"Give budgets as {{class: number of concepts}}; got {budgets!r}")
        changed = []
        for cls, n in budgets.items():
            column = self._class_index(cls)
            n = whole_number(n, f"the budget of {cls}", 1, len(self.concepts))
            if n != now[column]:
                now[column] = n
                changed.append(column)
        return now, changed

    def synonyms_of(self, concept):
        """The other concepts of ``concept``'s synonym group, which a 👍/👎 on it also tunes."""
        j = self._concept_index(concept)
        return [self.concepts[i] for i in group_of(self.synonym_groups, j) if i != j]

    def tuned(self, cls):
        """The concepts of a class held by a bound: ``{"up": names, "down": names}``. An up-tune
        bounds a weight from below only; a down-tune holds it between 0 and its kept value, so its
        lower bound is finite too and must not count it as up-tuned."""
        column = self._class_index(cls)
        down_tuned = np.isfinite(self.state.upper[column])
        up = np.flatnonzero(np.isfinite(self.state.lower[column]) & ~down_tuned)
        down = np.flatnonzero(down_tuned)
        return {"up": [self.concepts[j] for j in up], "down": [self.concepts[j] for j in down]}
