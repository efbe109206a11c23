"""Operators: thin adapters from App forms and ``execute_operator`` params to the library."""

from .concept_views import AddConcepts, SearchConcepts, ShowConceptOverlay, ShowConceptSamples
from .concepts import ComputeConcepts
from .deploy import ApplyStudentExport, ExportStudents
from .labels import WriteStudentLabels
from .students import (
    DeleteStudents,
    ExtendStudents,
    ListStudentRuns,
    NoteRevision,
    RenameStudents,
    RevertStudents,
    TrainStudents,
    TuneStudents,
)
from .teacher import ImportTeacherScores
from .workspace import OpenWorkspace

OPERATORS = (
    ComputeConcepts,
    ImportTeacherScores,
    TrainStudents,
    TuneStudents,
    ExtendStudents,
    RevertStudents,
    NoteRevision,
    ListStudentRuns,
    RenameStudents,
    DeleteStudents,
    ShowConceptOverlay,
    ShowConceptSamples,
    SearchConcepts,
    AddConcepts,
    ExportStudents,
    ApplyStudentExport,
    WriteStudentLabels,
    OpenWorkspace,
)


def register_operators(plugin):
    for operator in OPERATORS:
        plugin.register(operator)
