"""A student run's FiftyOne record: typed, so that FiftyOne's own run calls do the right thing, and
read, registered and (on a clone) given its history here.

A student run is registered with :class:`StudentsRunConfig`: ``dataset.get_run_info(key)`` prints
what the run is in a few lines (fields, hyper-parameters, sizes; its per-concept and per-class
arrays live in its history, see :mod:`fiftyone_inficond.students.store`);
``dataset.load_run_results(key)`` answers as the :class:`~fiftyone_inficond.students.run.StudentRun`
(loaded on first use: a dataset export writes the results without loading anything);
``dataset.load_run_view(key)`` gives the samples it was trained on; ``dataset.delete_run(key)``
removes its history and disk cache with it (FiftyOne calls :meth:`StudentsRun.cleanup`), and
``dataset.rename_run`` keeps both (they are keyed by the run's uid, not its key). A clone's run (its
record came with the dataset) takes a copy of its history on first use (:func:`own_history`).

FiftyOne finds these classes by their module path when it reads a run back: they stay here.
"""

import fiftyone.core.runs as focr

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.errors import InvalidRequest, RunInputsChanged, StaleRunError, UnknownName
from fiftyone_inficond.runs import CONCEPTS_METHOD, TEACHER_METHOD
from fiftyone_inficond.students import run_cache, store

# What a key names when it is not a student run, in the user's words.
_RUN_KINDS = {CONCEPTS_METHOD: "a concept run", TEACHER_METHOD: "a teacher run"}


class StudentsRunConfig(focr.RunConfig):
    """The record of a student run: what never changes, small enough to read."""

    def __init__(self, **kwargs):
        kwargs.setdefault("method", store.STUDENTS_METHOD)
        super().__init__(**kwargs)

    @classmethod
    def of(cls, run):
        """The record of a :class:`~fiftyone_inficond.students.run.StudentRun`: its config but the
        arrays its history keeps, and its sizes."""
        settings = {name: value for name, value in run.config.items() if name not in store.RUN_ARRAYS}
        sizes = dict(n_samples=len(run.ids), n_train=int(run.data.train.sum()), n_classes=len(run.classes),
                     n_concepts=len(run.concepts))
        return cls(**settings, **sizes)


class StudentsRun(focr.Run):
    """What FiftyOne's run calls do with a student run beyond its record (the name is the config's
    without ``Config``: FiftyOne finds it so)."""

    def cleanup(self, samples, key):
        store.delete_history(samples, getattr(self.config, "uid", None))
        run_cache.drop_cache(samples, vars(self.config))


class StudentsRunResults(focr.RunResults):
    """Stored empty, once per run, so that FiftyOne can load, export and import it: nothing is read
    until used. ``results.run`` is the :class:`~fiftyone_inficond.students.run.StudentRun` at its
    newest revision, loaded on first use, and the results answer for it (``results.report()``,
    ``results.tune(...)``)."""

    def __init__(self, samples, config, key, backend=None):
        self._run = None  # first: an attribute looked up during FiftyOne's init must not reach the run
        super().__init__(samples, config, key, backend=backend)

    @classmethod
    def _from_dict(cls, d, samples, config, key):
        return cls(samples, config, key)

    @property
    def run(self):
        if self._run is None:
            from fiftyone_inficond.students.registry import load_students  # the registry imports this module

            self._run = load_students(self.samples, self.key)
        return self._run

    def __getattr__(self, name):
        if name.startswith("_"):  # copy, pickle and FiftyOne's own lookups: never a load
            raise AttributeError(name)
        return getattr(self.run, name)

    def __repr__(self):
        return repr(self.run)

    def _repr_html_(self):
        return self.run._repr_html_()


def register(samples, key, record, replaced):
    """Points run ``key`` at the new ``record``, on ``samples`` (so that ``load_run_view`` gives them):
    a new run with its (empty) results, or the ``replaced`` run's record and view swapped in one write."""
    dataset = fiftyone_api.fresh_dataset(samples)
    if replaced is None:
        if key in dataset.list_runs():
            raise StaleRunError(f"Someone else created a run '{key}' while you trained: choose another key")
        samples.register_run(key, record, results=StudentsRunResults(samples, record, key), cache=False)
        return
    if store.run_uid(samples, key) != replaced.get("uid"):
        raise StaleRunError(f"Someone else changed run '{key}' while you trained: nothing was saved, train again")
    fiftyone_api.replace_run(samples, key, record)


def own_history(samples, key, uid):
    """Gives a clone's run (its record came with the dataset, its history did not) a copy of the
    history of the dataset it was cloned from, once all of the run's samples are here too."""
    if store.newest_revision(samples, uid) is not None:
        return
    elsewhere = store.history_elsewhere(uid)
    if elsewhere is None:
        return  # nothing to adopt: loading says so
    source, sample_ids = elsewhere
    missing = len(sample_ids) - fiftyone_api.exact_count(fiftyone_api.dataset_of(samples).select(sample_ids))
    if missing:
        raise RunInputsChanged(
            f"Student run '{key}' came with this dataset from another, but {missing} of its {len(sample_ids)} "
            f"samples did not: train it again here"
        )
    store.adopt_history(samples, uid, source)


def stored_kind(samples, key):
    """``(kind, config)`` of run ``key`` as stored now: kind is "students", another run's
    description, or ``None`` when there is no such run."""
    config = fiftyone_api.stored_run_config(samples, key)
    if config is None:
        return None, None
    method = config.get("method")
    if method == store.STUDENTS_METHOD:
        return "students", config
    return _RUN_KINDS.get(method, "a run of another kind"), config



def student_record(samples, key, require_uid=True):
    """The stored config dict of student run ``key``, refusing any other key with a clear message.
    Runs of plugin versions before uids can still be renamed and deleted, not loaded."""
    kind, config = stored_kind(samples, key)
    if kind is None:
        raise UnknownName(f"Dataset '{fiftyone_api.dataset_of(samples).name}' has no student run '{key}'")
    if kind != "students":
        raise InvalidRequest(f"'{key}' is {kind}, not a student run")
    if require_uid and "uid" not in config:
        raise RunInputsChanged(f"Student run '{key}' was trained by an older version of this plugin: train it again")
    return config

