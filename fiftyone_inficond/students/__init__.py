"""Concept students: sparse linear students per class, trained, tuned and stored as runs.

Two levels import from here, lazily as the package root's names do (see :mod:`fiftyone_inficond`):

- runs on a dataset: trained, loaded and listed by :mod:`.registry` (``train_students``,
  ``load_students``, ...), each a :class:`StudentRun` (:mod:`.run`); also at the package root;
  ``entry_metrics`` reads a history entry's metrics on one split (:mod:`.evaluation`);
- the estimator on arrays, without FiftyOne runs: :class:`SparseStudents` (scikit-learn's shape,
  :mod:`.estimator`; also at the package root), and the functions beneath it: ``TrainingConfig``,
  ``initial_weights``, ``no_bounds``, ``fit``, ``class_budgets``, ``fit_to_budgets``, ``class_metrics``; and its
  streamed form for datasets larger than memory: ``cache_inputs`` and ``InputsCache`` (the disk
  cache, :mod:`.cache`), ``fit_streamed``, ``streamed_agreement``, ``streamed_agreement_ap``
  (:mod:`.streaming`).

Lazily, because the store (:mod:`.store`, imported by :mod:`fiftyone_inficond.leases`) and the
budget rules are read by modules that :mod:`.registry` itself imports: an eager import of it here
would run inside those imports, and load Lightning for a caller that needs neither.
"""

from fiftyone_inficond import _lazy_attributes

_NAMES = {
    "fiftyone_inficond.students.registry": (
        "train_students", "extend_students", "load_students", "open_students", "list_student_runs",
        "student_history", "rename_students", "delete_students",
    ),
    "fiftyone_inficond.students.run": ("StudentRun",),
    "fiftyone_inficond.students.evaluation": ("entry_metrics",),
    "fiftyone_inficond.students.training": (
        "TrainingConfig", "initial_weights", "fit", "class_budgets", "fit_to_budgets",
    ),
    "fiftyone_inficond.students.estimator": ("SparseStudents",),
    "fiftyone_inficond.students.tuning": ("no_bounds",),
    "fiftyone_inficond.students.metrics": ("class_metrics",),
    "fiftyone_inficond.students.cache": ("cache_inputs", "InputsCache"),
    "fiftyone_inficond.students.streaming": ("fit_streamed", "streamed_agreement", "streamed_agreement_ap"),
}

__all__ = [name for names in _NAMES.values() for name in names]

__getattr__, __dir__ = _lazy_attributes(globals(), _NAMES)
