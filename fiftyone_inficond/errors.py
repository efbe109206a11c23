"""The library's own errors: every refusal a user can meet is one of these, in their words.

Callers (operators, panels, scripts) can tell a refusal that says what to do next from a bug:
anything else escaping the library is a bug to report. Each class also derives from the
builtin a Python caller would expect (``ValueError``, ``KeyError``, ``RuntimeError``).
"""


class InficondError(Exception):
    """A request the library refused, with a message that says what to do next."""

    def __str__(self):
        # KeyError's own __str__ shows the repr (quotes); users should read the sentence.
        return str(self.args[0]) if self.args else ""


class InvalidRequest(InficondError, ValueError):
    """A parameter, name or input that cannot be used as given."""


class UnknownName(InficondError, KeyError):
    """A class, concept, run or revision that does not exist."""


class RunInputsChanged(InficondError, ValueError):
    """A student run's concepts, teacher or samples changed since it was trained."""


class StaleRunError(InficondError, RuntimeError):
    """A save based on an outdated revision of a student run, or on a run since deleted."""


class MissingFile(InficondError, FileNotFoundError):
    """A file the request names does not exist."""


class DatabaseUnavailable(InficondError, ConnectionError):
    """The database stopped answering during a write; what was written is kept and a re-run resumes."""


class WriteFailed(InficondError, OSError):
    """A file could not be written (disk full, no permission); nothing half-written is left."""
