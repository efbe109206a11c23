"""InFiConD: concept-based students distilled from any teacher, tuned without code (a FiftyOne plugin's library).

The SDK's entry points and the library's errors import from here::

    from fiftyone_inficond import compute_concepts, teacher_from_file, train_students, InvalidRequest

The entry points load lazily (PEP 562): each is imported from its module on first use. Loading
them all imports FiftyOne, torch, Lightning and open_clip: 10 to 12 s warm, against 0.4 ms for
this module and its errors (``python -X importtime``). Python runs this file before any
``fiftyone_inficond.<module>`` (the plugin's imports, a worker's, a test's), so eager re-exports
would make every small module cost all of them, and would import each module's dependents
in the middle of its own import (a cycle). The errors depend on nothing and import as they are.
"""

import importlib

from fiftyone_inficond.errors import (
    DatabaseUnavailable,
    InficondError,
    InvalidRequest,
    MissingFile,
    RunInputsChanged,
    StaleRunError,
    UnknownName,
    WriteFailed,
)

__version__ = "0.1.0"

_ENTRY_POINTS = {
    "fiftyone_inficond.extraction": ("compute_concepts", "prepare_concepts", "shard"),
    "fiftyone_inficond.teacher": (
        "set_teacher_scores", "teacher_from_file", "teacher_from_labels", "teacher_from_model", "teacher_from_clip",
        "teacher_scores",
    ),
    "fiftyone_inficond.students.registry": (
        "train_students", "extend_students", "load_students", "open_students", "list_student_runs",
        "student_history", "rename_students", "delete_students",
    ),
    "fiftyone_inficond.students.run": ("StudentRun",),
    "fiftyone_inficond.students.predictions": ("write_student_labels", "write_teacher_labels"),
    "fiftyone_inficond.students.figures": ("performance_figure", "concepts_figure", "what_if_figure"),
    "fiftyone_inficond.students.estimator": ("SparseStudents",),
    "fiftyone_inficond.new_concepts": ("add_concepts", "search_concepts"),
    "fiftyone_inficond.locate": ("top_patches", "concept_heatmaps"),
    "fiftyone_inficond.overlay": ("show_concept_overlay",),
    "fiftyone_inficond.projection": ("concept_projection",),
    "fiftyone_inficond.deploy.export": ("export_students",),
    "fiftyone_inficond.deploy.loading": ("load_export", "list_exports"),
    "fiftyone_inficond.deploy.model": ("apply_export", "load_student_model"),
    "fiftyone_inficond.workspace": ("save_workspace",),
}

__all__ = [
    *(name for names in _ENTRY_POINTS.values() for name in names),
    "InficondError", "InvalidRequest", "UnknownName", "RunInputsChanged", "StaleRunError", "MissingFile",
    "DatabaseUnavailable", "WriteFailed",
]


def _lazy_attributes(namespace, homes):
    """``(__getattr__, __dir__)`` for a package whose ``homes`` (module -> names) load on first
    use; each loaded name is then kept in ``namespace`` (the package's ``globals()``)."""
    module_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name):
        if name not in module_of:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        namespace[name] = getattr(importlib.import_module(module_of[name]), name)
        return namespace[name]

    def __dir__():
        return sorted({*namespace, *module_of})

    return __getattr__, __dir__


__getattr__, __dir__ = _lazy_attributes(globals(), _ENTRY_POINTS)
