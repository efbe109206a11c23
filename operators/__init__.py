"""Operators: thin adapters from App forms and ``execute_operator`` params to the library."""

from .concepts import ComputeConcepts
from .students import (
    DeleteStudentRun,
    ListStudentRuns,
    RenameStudentRun,
    RevertStudents,
    TrainStudents,
    TuneStudents,
)
from .teacher import ImportTeacherScores

OPERATORS = (
    ComputeConcepts,
    ImportTeacherScores,
    TrainStudents,
    TuneStudents,
    RevertStudents,
    ListStudentRuns,
    RenameStudentRun,
    DeleteStudentRun,
)


def register_operators(plugin):
    for operator in OPERATORS:
        plugin.register(operator)
