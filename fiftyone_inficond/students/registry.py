"""The registry of a dataset's student runs: train, extend, load, open, list, rename and delete
them, and the key claims that let two clients creating one key at the same moment leave exactly
one run. A run itself, what it computes and how it is tuned, is :class:`StudentRun`.

Every write validates all of its inputs first and then writes in an order where a crash at
any point leaves the old state or the new one (see :mod:`fiftyone_inficond.students.store`).
"""

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict

from fiftyone.core.collections import SampleCollection

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.corpus import make_corpus
from fiftyone_inficond.crashpoints import crashpoint
from fiftyone_inficond.errors import InvalidRequest, RunInputsChanged
from fiftyone_inficond.locate import require_embeddings
from fiftyone_inficond.students import housekeeping, keys, run_cache, store
from fiftyone_inficond.students.budget import check_budget
from fiftyone_inficond.students.data import check_inputs, read_inputs, run_data, training_data
from fiftyone_inficond.students.estimator import fit_students
from fiftyone_inficond.students.evaluation import split_record, stored_metrics
from fiftyone_inficond.students.fiftyone_run import (
    StudentsRun,
    StudentsRunConfig,
    own_history,
    register,
    stored_kind,
    student_record,
)
from fiftyone_inficond.students.fingerprint import values_fingerprint
from fiftyone_inficond.students.progress import fitting_progress
from fiftyone_inficond.students.run import StudentRun
from fiftyone_inficond.students.streaming import standardization as cache_standardization
from fiftyone_inficond.students.training import (
    TrainingConfig,
    standardization,
    training_config,
)
from fiftyone_inficond.students.tuning import no_bounds
from fiftyone_inficond.synonyms import check_threshold, class_concepts, synonym_groups
from fiftyone_inficond.text_cache import run_text_embeddings
from fiftyone_inficond.validation import flag, name, number, run_key


def train_students(
    samples: SampleCollection,
    key: str = "students",
    concepts_field: str = "concepts",
    teacher_field: str = "teacher",
    gt_field: str | None = "ground_truth",
    train_tag: str | None = None,
    split_field: str | None = None,
    epochs: int = 10,
    l1: float = 1e-4,
    lr: float = 1e-2,
    batch_size: int | None = None,
    seed: int = 0,
    budget: int | str | None = "auto",
    synonym_threshold: float | None = None,
    threshold: float = 0.5,
    user: str | None = None,
    overwrite: bool = False,
    streamed: bool | None = None,
    cache_dir: str | None = None,
    progress: bool | Callable | None = None,
    keep_class_concepts: bool = False,
) -> StudentRun:
    """Trains one linear student per teacher class and saves them as student run ``key``.

    Args:
        samples: a FiftyOne collection with concept vectors and teacher scores
        key: the run key
        concepts_field, teacher_field: fields written by concept extraction and a teacher
        gt_field: a ``Classifications`` ground-truth field for evaluation, or ``None``
            (ignored when the dataset has no such field)
        train_tag, split_field: train on samples with this tag, or whose split field is
            ``"train"``; the rest is the validation split. All samples by default
        epochs, l1, lr, batch_size, seed: training hyper-parameters (see
            :class:`fiftyone_inficond.students.training.TrainingConfig`)
        budget: how many concepts each class's student may use: a number, ``"auto"`` (each
            class's chosen from the data, see :mod:`fiftyone_inficond.students.budget`) or
            ``None`` (every concept)
        synonym_threshold: concepts whose names are spelling variants of each other are tuned
            together; with a cosine in (0, 1], so are those whose prompts embed at least that
            close in the concept run's text model (see :mod:`fiftyone_inficond.synonyms`)
        threshold: the probability at which teacher and students say "positive"
        user: who trains (the OS user by default)
        overwrite: replace an existing student run ``key``
        streamed: keep the concept vectors in a disk cache rather than in memory (``None``: when
            they would take more than a quarter of the free memory; see
            :mod:`fiftyone_inficond.students.run_cache`)
        cache_dir: where a streamed run's cache goes (FiftyOne's dataset directory by default)
        progress: a progress bar per stage of fitting, as FiftyOne's own ``progress`` arguments: ``None``
            (``fo.config.show_progress_bars`` decides), ``True``/``False``, or a callable given the bar
        keep_class_concepts: let the students use concepts that name a class ("car" for class car,
            see :func:`fiftyone_inficond.synonyms.class_concepts`); left out by default, and the run
            records which (``run.left_out``)

    Returns:
        a :class:`StudentRun`
    """
    return _train(samples, key, concepts_field, teacher_field, gt_field, train_tag, split_field,
                  training_config(epochs, l1, lr, batch_size, seed, budget), threshold, user, overwrite,
                  synonym_threshold=check_threshold(synonym_threshold), streamed=streamed, cache_dir=cache_dir,
                  progress=progress, keep_class_concepts=flag(keep_class_concepts, "keep_class_concepts"))


def extend_students(samples: SampleCollection, key: str, new_key: str | None = None,
                    user: str | None = None) -> StudentRun:
    """Trains student run ``key`` again with the concepts added to its concept run since, as a
    new run ``new_key`` (by default the first free of ``"<key>_extended"``, ``"<key>_extended_2"``, ...):
    the same samples, split and settings,
    and every bound of its newest revision kept (the 👍/👎 so far); the added concepts start free.
    Run ``key`` stays as it was, to compare with or go back to.

    Returns:
        the new :class:`StudentRun`; its first history entry names the run and revision it
        extends and the added concepts
    """
    old = load_students(samples, key)
    config = old.config
    added = read_inputs(samples, config["concepts_field"], config["teacher_field"]).concept_names[len(old.concepts):]
    if not added:
        raise InvalidRequest(
            f"Student run '{key}' already uses every concept of '{config['concepts_field']}': add concepts first"
        )
    lower, upper = no_bounds((len(old.classes), len(old.concepts) + len(added)))
    lower[:, : len(old.concepts)], upper[:, : len(old.concepts)] = old.state.lower, old.state.upper
    dataset = fiftyone_api.dataset_of(samples)
    return _train(
        dataset.select(old.ids), new_key or keys.free_key(samples, f"{key}_extended"),
        config["concepts_field"],
        config["teacher_field"], config["gt_field"], config["train_tag"], config["split_field"],
        TrainingConfig(**config["training"]), config["threshold"], user, overwrite=False,
        bounds=(lower, upper), synonym_threshold=config.get("synonyms", {}).get("threshold"),
        cache_dir=None if config.get("cache") is None else os.path.dirname(config["cache"]),
        keep_class_concepts=not config.get("left_out", True),
        view=dataset.load_run_view(key),  # its samples, recorded as compactly as the run it extends did
        extends={"key": key, "revision": old.revision, "added": added},
    )


@fiftyone_api.speaks_for_database(lambda samples, key, *args, **kwargs: (
    f"The database stopped answering while student run '{key}' was trained: it was not saved; train it "
    f"again once the database is back"))
def _train(samples, key, concepts_field, teacher_field, gt_field, train_tag, split_field, training, threshold,
           user, overwrite, bounds=None, synonym_threshold=None, streamed=False, cache_dir=None, view=None,
           progress=None, keep_class_concepts=False, **info):
    """Trains and saves run ``key`` on ``samples``, recorded on ``view`` (``samples`` by default: the
    collection FiftyOne's ``load_run_view`` gives back)."""
    key = run_key(key)
    threshold = number(threshold, "the decision threshold", 0, 1, low_open=True, high_open=True)
    inputs = read_inputs(samples, name(concepts_field, "the concepts field"), name(teacher_field, "the teacher field"))
    check_budget(training.budget, len(inputs.concept_names))
    synonyms = _synonyms(samples, concepts_field, inputs.concept_names, synonym_threshold)
    uid = uuid.uuid4().hex
    streams = run_cache.streams(samples, concepts_field, teacher_field, len(inputs.concept_names), streamed)
    cache = run_cache.cache_directory(uid, cache_dir) if streams else None
    with keys.key_lease(samples, key) as lease:
        replaced = keys.claim_key(samples, key, overwrite)
        if gt_field is not None and not samples.has_field(gt_field):
            gt_field = None
        left_out = {} if keep_class_concepts else class_concepts(inputs.concept_names, inputs.classes)
        config = dict(uid=uid, cache=cache, concepts_field=concepts_field, teacher_field=teacher_field,
                      gt_field=gt_field, train_tag=train_tag, split_field=split_field, training=asdict(training),
                      threshold=threshold, synonyms=synonyms, **inputs.record(),
                      left_out=[{"concept": inputs.concept_names[j], "class": cls} for j, cls in left_out.items()])
        try:
            if cache is not None:
                run_cache.claim_cache(uid, cache)  # found by a later sweep if this process is killed
            data = _training_arrays(samples, inputs, config)
            run = StudentRun(samples, key, config, data, inputs.concept_names)
            lower, upper = no_bounds((data.teacher.shape[1], run.inputs.shape[1])) if bounds is None else bounds
            lower[:, list(left_out)] = upper[:, list(left_out)] = 0.0  # no student may use them
            crashpoint("train:fitting")
            with fitting_progress(progress):
                weight, bias, budgets, path = fit_students(run.inputs, data.teacher, lower, upper, training,
                                                           threshold, rows=run._train_rows())
            config.update(class_budgets=None if budgets is None else budgets.tolist(), budget_path=path)
            run.state = store.StudentState(weight, bias, lower, upper)
            _save_trained(run, samples if view is None else view, replaced, user, lease, **info)
        except BaseException:
            run_cache.remove_cache(config["cache"])
            raise
        finally:
            if cache is not None:
                run_cache.release_cache(uid)
        return run


def _training_arrays(samples, inputs, config):
    """The run's arrays, in memory or with the vectors in its cache, and (into ``config``) their
    standardization and, in memory, the fingerprint that notices their later edits."""
    fields = [config[name] for name in ("concepts_field", "teacher_field", "gt_field", "train_tag", "split_field")]
    if config["cache"] is None:
        data = training_data(samples, inputs, *fields)
        mean, std = standardization(data.concepts, data.train)
        config["values"] = values_fingerprint(data.concepts, data.teacher)
    else:
        data = run_cache.cached_training_data(samples, inputs, *fields, config["cache"])
        mean, std = cache_standardization(data.concepts)
    config.update(concept_mean=mean.tolist(), concept_std=std.tolist())
    return data


def _synonyms(samples, concepts_field, names, threshold):
    """The run's record of its synonym groups (names) and the threshold they were formed with."""
    embeddings = None
    if threshold is not None:
        config = require_embeddings(samples, concepts_field)
        embeddings = run_text_embeddings(config, make_corpus(names).texts(config["template"]))
    groups = synonym_groups(names, embeddings, threshold)
    return {"threshold": threshold, "groups": [[names[j] for j in group] for group in groups]}


def _save_trained(run, view, replaced, user, lease, **info):
    """Saves revision 0 of a newly trained run: its history first (unreachable until a run
    points at it), then the run record in one write, then drops the replaced run's history."""
    samples = run.samples
    metrics = run._split_metrics()
    splits = split_record(run.classes, metrics)
    stopped = lambda: (  # noqa: E731
        f"The database stopped answering while student run '{run.key}' was saved: it was not saved "
        f"(nothing of it is kept); train again once the database is back"
    )
    with fiftyone_api.database_errors(stopped):
        store.insert_first(samples, run.uid, run.state, run.data.ids, run.data.train, run.config,
                           kind="train", user=user, instructions=[],
                           metrics_after=splits["all"]["after"], splits=splits,
                           per_class_metrics=stored_metrics(metrics), **info)
        crashpoint("train:history-written")
        try:
            lease.renew()  # still ours: no one else can be registering this key now
            register(view, run.key, StudentsRunConfig.of(run), replaced)
        except Exception:
            store.delete_history(samples, run.uid)
            raise
    run.revision = 0
    crashpoint("train:run-registered")
    if replaced is not None:
        store.delete_history(samples, replaced.get("uid"))
        run_cache.drop_cache(samples, replaced)
    housekeeping.purge_orphans()


def load_students(samples: SampleCollection, key: str = "students") -> StudentRun:
    """Loads student run ``key`` (its newest revision) with the samples it was trained on that still
    exist: its figures are on those (``run.samples_deleted`` says how many are gone), the samples added
    since are not its own, and its teacher may have been imported again for them.

    Raises:
        RunInputsChanged: its concepts, or the teacher scores of its samples, changed since it was trained
    """
    config = student_record(samples, key)
    own_history(samples, key, config["uid"])
    sample_ids, train, arrays = store.load_samples(samples, key, config["uid"])
    config = {**arrays, **config}  # a run of an earlier version kept them in its record
    inputs = _unchanged_inputs(samples, key, config)
    if config.get("cache"):
        data, deleted = run_cache.cached_run_data(samples, key, sample_ids, train, config)
    else:
        data, deleted = run_data(samples, key, sample_ids, train, config, len(inputs.concept_names))
    run = StudentRun(samples, key, config, data, inputs.concept_names[: len(config["concept_mean"])],
                     samples_deleted=deleted, teacher_digest=inputs.record()["teacher_digest"])
    run._load_revision()
    return run


def _unchanged_inputs(samples, key, config):
    """The concept and teacher runs of student run ``key``, refused if they changed since it was trained."""
    try:
        inputs = read_inputs(samples, config["concepts_field"], config["teacher_field"])
    except InvalidRequest as error:
        raise RunInputsChanged(f"Student run '{key}' lost its inputs: {error}") from None
    check_inputs(key, config, inputs)
    return inputs


_OPEN_RUNS = {}  # (dataset id, key) -> StudentRun, this process's loaded runs


def open_students(samples: SampleCollection, key: str = "students") -> StudentRun:
    """Student run ``key`` for interactive use: loaded once per process, then reused.

    A few small reads decide what to do: the same run at the same revision is returned as
    it is; a revision someone else saved since reloads only the weights; a run trained again,
    replaced or renamed is loaded again; changed concepts or teacher scores are refused as
    :func:`load_students` refuses them.
    """
    cache_key = (str(fiftyone_api.dataset_id(samples)), key)
    run = _OPEN_RUNS.get(cache_key)
    if run is None or store.run_uid(samples, key) != run.uid:
        run = _OPEN_RUNS[cache_key] = load_students(samples, key)
        return run
    inputs = _unchanged_inputs(samples, key, run.config)
    if inputs.record()["teacher_digest"] != run.teacher_digest:  # scores imported again: its own checked anew
        run = _OPEN_RUNS[cache_key] = load_students(samples, key)
        return run
    if run.newest_revision() != run.revision:
        run.reload()
    return run


def list_student_runs(samples: SampleCollection) -> list[str]:
    """Keys of the student runs of a dataset (as stored now, also by other clients)."""
    return fiftyone_api.run_keys(samples, store.STUDENTS_METHOD)


def student_history(samples: SampleCollection, key: str) -> list[dict]:
    """Every iteration of student run ``key``, oldest first, without loading its data (none for a
    copied run whose history could not come with it, see :func:`load_students`)."""
    uid = student_record(samples, key)["uid"]
    with contextlib.suppress(RunInputsChanged):
        own_history(samples, key, uid)
    return store.list_entries(samples, uid)


def rename_students(samples: SampleCollection, key: str, new_key: str) -> None:
    """Renames student run ``key`` to ``new_key``; its history follows (it is keyed by run uid)."""
    new_key = run_key(new_key)
    with keys.key_lease(samples, new_key):
        student_record(samples, key, require_uid=False)
        if stored_kind(samples, new_key)[0] is not None:
            raise InvalidRequest(f"A run '{new_key}' already exists: choose another key")
        fiftyone_api.fresh_dataset(samples).rename_run(key, new_key)


def delete_students(samples: SampleCollection, key: str) -> None:
    """Deletes student run ``key``, then its history (orphans of a crash in between are purged later)."""
    config = student_record(samples, key, require_uid=False)
    # The record first, then the history: a crash between leaves history no run reaches (purged later),
    # never a run without history, as FiftyOne's own delete_run (history first, see StudentsRun) could.
    StudentsRun.delete_run(fiftyone_api.fresh_dataset(samples), key, cleanup=False)
    crashpoint("delete:run-deleted")
    store.delete_history(samples, config.get("uid"))
    run_cache.drop_cache(samples, config)
    housekeeping.purge_orphans()
