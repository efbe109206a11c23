"""Student run keys: a key held from the check that it is free to the run's registration, so that of
two clients creating (or renaming to) one key at the same moment exactly one goes on (a lease,
:mod:`fiftyone_inficond.leases`); what a key already names; the first free key of a stem.
"""

import itertools

from fiftyone_inficond import fiftyone_api, leases
from fiftyone_inficond.errors import InvalidRequest, StaleRunError
from fiftyone_inficond.students import store
from fiftyone_inficond.students.fiftyone_run import stored_kind


def free_key(samples, stem):
    """``stem``, or ``stem_2``, ``stem_3``, ... : the first that is not a student run yet."""
    taken = set(fiftyone_api.run_keys(samples, store.STUDENTS_METHOD))
    return next(k for k in (stem if i == 1 else f"{stem}_{i}" for i in itertools.count(1)) if k not in taken)


def key_lease(samples, key):
    """Holds run key ``key`` from the check that it is free to its registration, so that of two
    clients creating (or renaming to) one key at the same moment exactly one goes on."""
    return leases.held(samples, f"students/{key}", lambda holder: StaleRunError(
        f"Someone else ({leases.describe(holder)}) is training or renaming a student run '{key}' right now: "
        f"choose another key, or try again once theirs is saved"
    ))


def claim_key(samples, key, overwrite):
    """The stored config of the student run ``key`` replaces (``None``: a new key); refuses other runs."""
    kind, config = stored_kind(samples, key)
    if kind is None:
        return None
    if kind != "students":
        raise InvalidRequest(f"'{key}' is {kind}, not a student run: choose another key")
    if not overwrite:
        raise InvalidRequest(f"A student run '{key}' already exists: choose another key or pass overwrite=True")
    return config
