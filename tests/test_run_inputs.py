"""A run's inputs are what it says they are: vectors of the wrong width, kind or values are refused
before training, inputs edited by hand since training are noticed on load, and the SDK's
requests past their limits are refused in the user's words (issue "Runs that cannot be silently
corrupted, round 2": items 3, 8, 9, 11 and 12)."""

import numpy as np
import pytest
from test_integrity import execute, snapshot

from fiftyone_inficond.errors import InficondError, RunInputsChanged
from fiftyone_inficond.extraction import MAX_CONCEPTS
from fiftyone_inficond.new_concepts import add_concepts
from fiftyone_inficond.runs import run_config
from fiftyone_inficond.students.registry import load_students, train_students


def _vectors(dataset, field):
    return np.stack(dataset.values(field))


def _replace(dataset, field, change):
    """Writes ``change(vectors)`` (an (n, d) array, or a list of per-sample values) as ``field``."""
    vectors = change(_vectors(dataset, field))
    dataset.set_values(field, list(vectors))


def _width(dataset):
    return len(run_config(dataset, "concepts", "inficond_concepts")["concepts"])


@pytest.mark.parametrize("change, message", [
    (lambda v: v[:, :7], "holds vectors of 7 values where its concept run names"),
    (lambda v: np.concatenate([v, v[:, :20]], axis=1), r"holds vectors of \d+ values where its concept run names"),
    (lambda v: [np.array(["x"] * len(row)) for row in v], "holds values that are not concept vectors"),
    (lambda v: np.where(np.arange(len(v))[:, None] == 3, np.nan, v), "1 samples' concept vectors .* NaN"),
])
def test_concept_vectors_no_extraction_wrote_are_refused_before_training(distilled, change, message):
    _replace(distilled, "concepts", change)
    before = snapshot(distilled)
    with pytest.raises(InficondError, match=message):
        train_students(distilled, key="s", epochs=1, budget=None)
    assert snapshot(distilled) == before


@pytest.mark.parametrize("change, message", [
    (lambda t: t[:, :-1], "teacher scores of 79 classes where its teacher run names 80"),
    (lambda t: t * 2, "are not probabilities"),
    (lambda t: np.where(np.arange(len(t))[:, None] == 0, np.inf, t), "NaN or infinite"),
])
def test_teacher_scores_no_import_wrote_are_refused_before_training(distilled, change, message):
    _replace(distilled, "teacher", change)
    before = snapshot(distilled)
    with pytest.raises(InficondError, match=message):
        train_students(distilled, key="s", epochs=1, budget=None)
    assert snapshot(distilled) == before


@pytest.mark.parametrize("field, change", [
    ("teacher", lambda t: 1 - t),
    ("concepts", lambda v: np.where(np.arange(len(v))[:, None] == 5, 0, v)),
    ("concepts", lambda v: np.where(np.arange(len(v))[:, None] == 5, np.nan, v)),
])
def test_inputs_edited_by_hand_since_training_are_noticed_on_load_and_restoring_them_recovers(distilled, field,
                                                                                               change):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    original = _vectors(distilled, field)
    _replace(distilled, field, change)
    with pytest.raises(RunInputsChanged, match=f"in '{field}'.* were changed since .*: retrain it"):
        load_students(distilled, "s")
    distilled.set_values(field, list(original))
    assert np.array_equal(load_students(distilled, "s").weight, run.weight)


def test_concepts_past_the_concept_maps_limit_are_refused_before_the_run_is_marked_unfinished(distilled):
    config = run_config(distilled, "concepts", "inficond_concepts")
    too_many = [f"thing {i}" for i in range(MAX_CONCEPTS - _width(distilled) + 1)]
    with pytest.raises(InficondError, match=f"at most {MAX_CONCEPTS:,} concepts: 'concepts' has"):
        add_concepts(distilled, too_many)
    assert run_config(distilled, "concepts", "inficond_concepts") == config


def test_revisions_and_what_if_sizes_past_their_limits_are_refused_in_the_users_words(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    before = snapshot(distilled)
    for revision in (2**63, 2**64, 1):
        with pytest.raises(InficondError, match=f"has no revision {revision}: pick one from its history \\(0 to 0\\)"):
            run.revert(revision)
    with pytest.raises(Exception, match="The revision to restore must be a whole number of at least 0; got None"):
        execute("revert_students", distilled, key="s")  # the App sent no revision
    with pytest.raises(InficondError, match="The number of concepts must be a whole number from 1 to"):
        run.what_if(run.classes[0], n=10**9)
    assert snapshot(distilled) == before


def test_the_runs_list_of_a_clone_shows_the_history_it_came_with(distilled):
    train_students(distilled, key="s", epochs=1, budget=None)
    clone = distilled.clone()
    try:
        message = execute("list_student_runs", clone)["message"]
        assert "- **s**: revision 0, 1 entries, last by " in message
    finally:
        clone.delete()
