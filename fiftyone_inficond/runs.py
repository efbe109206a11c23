"""Run records: what wrote a field, stored as a FiftyOne custom run keyed by the field's name.

Any client of the same database can list these runs and read their config (model, corpus,
class names...), which is how later stages check they combine compatible fields, and how a
student run notices that the concepts or teacher scores it learnt from were replaced.
"""

import hashlib
import json

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import dataset_of, exact_count, fresh_dataset, stored_run_config

CONCEPTS_METHOD = "inficond_concepts"
TEACHER_METHOD = "inficond_teacher"
# What adding concepts to a concept run changes (fiftyone_inficond.new_concepts): its other
# settings, and so its segments and the columns it had, stay as they were.
CORPUS_ATTRIBUTES = ("field", "concepts", "corpus_id", "complete", "extends")


def record_run(samples, field, method, overwrite=False, **config):
    """Registers run ``field`` on the dataset of ``samples`` with the given config."""
    dataset = dataset_of(samples)
    dataset.register_run(
        field, dataset.init_run(method=method, field=field, **config), overwrite=overwrite
    )


def run_config(samples, field, method):
    """The config (a dict) of the ``method`` run that wrote ``field``, or ``None``."""
    config = stored_run_config(samples, field)  # as stored now: another client may have replaced it
    if config is None or config.get("method") != method:
        return None
    return {name: value for name, value in config.items() if name not in ("cls", "type", "method")}


def require_run(samples, field, method, what):
    """Like :func:`run_config`, but raises a clear error when ``field`` has no such run, or
    one whose writer stopped before it finished (see :func:`mark_complete`)."""
    config = run_config(samples, field, method)
    if config is None:
        raise InvalidRequest(
            f"Field '{field}' of dataset '{dataset_of(samples).name}' holds no {what}: "
            f"compute them first"
        )
    if config.get("complete") is False:
        raise InvalidRequest(
            f"The {what} in '{field}' were not fully written (the writer stopped midway): "
            f"write them again with overwrite=True"
        )
    return config


def mark_complete(samples, field):
    """Flags run ``field``, recorded with ``complete=False`` before its values, as whole: one write."""
    dataset = fresh_dataset(samples)
    config = dataset.get_run_info(field).config
    config.complete = True
    dataset.update_run_config(field, config)


def fingerprint(config, ignore=("field",)):
    """A short stable digest of a run config without its ``ignore`` attributes (its field name by
    default): equal configs, equal runs."""
    settings = {name: value for name, value in config.items() if name not in ignore}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def delete_run(samples, field):
    """Deletes run ``field`` (if any) and the fields it wrote."""
    dataset = dataset_of(samples)
    if field in dataset.list_runs():
        dataset.delete_run(field)
    for name in _written_fields(field):
        if dataset.has_sample_field(name):
            dataset.delete_sample_field(name)


def claim_field(samples, field, method, overwrite, what):
    """Frees ``field`` for a new ``method`` run, refusing to destroy anything unasked (see
    :func:`require_free_field`)."""
    if require_free_field(samples, field, method, overwrite, what):
        delete_run(samples, field)


def require_free_field(samples, field, method, overwrite, what):
    """Whether ``field`` holds an earlier ``method`` run that a new one would replace; refused,
    writing nothing (a form checks it before Execute), when ``field`` holds data no ``method`` run
    wrote; unless ``overwrite``, data an earlier ``method`` run wrote; and even then, data of
    samples outside ``samples`` (a field belongs to one run, so overwriting part of it would
    delete the rest)."""
    dataset = fresh_dataset(samples)
    occupied = field in dataset.list_runs() or any(
        dataset.has_sample_field(name) for name in _written_fields(field)
    )
    if not occupied:
        return False
    if run_config(samples, field, method) is None:
        raise InvalidRequest(f"Field '{field}' holds data that is not {what}: choose another field")
    if not overwrite:
        raise InvalidRequest(
            f"Field '{field}' already holds {what} of another run. Choose another field, "
            f"or overwrite them (overwrite=True)"
        )
    if dataset.has_sample_field(field):
        outside = exact_count(dataset.exists(field)) - exact_count(samples.exists(field))
        if outside > 0:
            raise InvalidRequest(
                f"Field '{field}' also holds {what} of {outside} samples outside this view, which "
                f"overwriting would delete: run it on the whole dataset, or choose another field"
            )
    return True


def _written_fields(field):
    return (field, segments_field(field))


def segments_field(field):
    """The field holding the segment maps of concept field ``field``."""
    return f"{field}_segments"
