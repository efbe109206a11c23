"""The handle the App's panels use: one load per process, cheap freshness checks, JSON-safe answers."""

import json

import numpy as np
import pytest
from conftest import run_python

from fiftyone_inficond.errors import RunInputsChanged, StaleRunError
from fiftyone_inficond.new_concepts import add_concepts
from fiftyone_inficond.students import run as run_module
from fiftyone_inficond.students.metrics import GROUPS, SUBSETS
from fiftyone_inficond.students.registry import open_students, train_students
from fiftyone_inficond.teacher import set_teacher_scores, teacher_scores


def _colleague(dataset, body):
    return run_python(
        "import fiftyone as fo\n"
        "from fiftyone_inficond.students.registry import load_students, train_students\n"
        f"ds = fo.load_dataset('{dataset.name}')\n" + body
    )


def test_an_open_run_is_reused_and_follows_a_colleagues_revisions(distilled, monkeypatch):
    distilled.persistent = True
    train_students(distilled, key="team", epochs=1, budget=None)  # every concept: any may be 👎'd
    mine = open_students(distilled, "team")
    assert open_students(distilled, "team") is mine and mine.revision == 0
    data = mine.data

    _colleague(distilled, "load_students(ds, 'team').tune(up={'person': ['sky']}, epochs=1, user='bob')\n")
    assert mine.newest_revision() == 1 and mine.revision == 0
    with monkeypatch.context() as patch:
        patch.setattr(run_module, "fit_tuned", lambda *args, **kwargs: pytest.fail("retrained a stale run"))
        with pytest.raises(StaleRunError, match="changed by bob .*revision 1.* after you loaded revision 0"):
            mine.tune(down={"person": ["road"]}, epochs=1)  # noticed before retraining anything
    assert mine.revision == 0 and mine.newest_revision() == 1

    again = open_students(distilled, "team")
    assert again is mine and again.revision == 1 and again.data is data  # weights reloaded, vectors kept
    assert again.tune(down={"person": ["road"]}, epochs=1)["revision"] == 2

    _colleague(distilled, "train_students(ds, key='team', epochs=1, budget=None, seed=3, overwrite=True)\n")
    retrained = open_students(distilled, "team")
    assert retrained is not mine and retrained.revision == 0 and retrained.uid != mine.uid


def test_an_open_run_refuses_changed_inputs(distilled):
    train_students(distilled, key="s", epochs=1, budget=None)
    open_students(distilled, "s")
    scores, classes = teacher_scores(distilled)
    set_teacher_scores(distilled, scores[:, ::-1], classes[::-1], keys=distilled.values("id"), overwrite=True)
    with pytest.raises(RunInputsChanged, match="changed order"):
        open_students(distilled, "s")


def test_answers_are_json_safe_and_agree_with_each_other(distilled):
    distilled.take(96, seed=0).tag_samples("train")
    run = train_students(distilled, key="s", epochs=1, budget=None, train_tag="train")
    run.tune(up={"person": ["sky"]}, epochs=1)
    answers = dict(
        performance=run.performance("validation", sort_by="ap_gap"),
        counts=run.agreement_counts("validation"),
        agreement=run.agreement("person", "validation"),
        by_weight=run.top_concepts("person", 5),
        by_positives=run.top_concepts("person", 5, by="positives"),
        by_negatives=run.top_concepts("person", 5, by="negatives"),
        what_if=run.what_if("person", n=3, n_values=5),
        history=run.history,
    )
    assert json.loads(json.dumps(answers, allow_nan=False))  # plain lists, numbers, strings, ISO times
    assert answers["history"][1]["time"].endswith("+00:00")

    validation = set(np.asarray(run.ids)[~run.data.train])
    for name in ("person", "car"):
        ids = run.agreement(name, "validation")
        assert set().union(*(set(v) for g in ids.values() for v in g.values())) == validation
        assert {g: {s: len(v) for s, v in named.items()} for g, named in ids.items()} == answers["counts"][name]
    view = run.agreement_view("person", "positives", "both_right", "validation")
    assert view.values("id") == answers["agreement"]["positives"]["both_right"]
    assert set(GROUPS) == set(answers["agreement"]) and set(SUBSETS) == set(answers["agreement"]["negatives"])
    assert answers["what_if"]["weights"] == [
        pytest.approx(float(run.weight[run.classes.index("person"), run.concepts.index(c)]))
        for c in answers["what_if"]["concepts"]]


def test_metrics_of_every_split_follow_a_tune(distilled):
    distilled.take(96, seed=0).tag_samples("train")
    run = train_students(distilled, key="s", epochs=1, budget=None, train_tag="train")
    run.performance("validation")  # cached
    run.tune(up={"person": ["sky"], "car": ["road"]}, epochs=1)
    cached = run.performance("validation")
    run._metrics_cache.clear()
    assert run.performance("validation") == cached


def test_predictions_for_any_samples_equal_the_runs_own_even_after_an_addition(distilled):
    run = train_students(distilled.take(90, seed=1), key="p", epochs=1, budget=None)
    add_concepts(distilled, ["propeller"])  # wider vectors: the run reads its columns only
    ids, probabilities = run.predict(distilled.select(run.ids[:30], ordered=True))
    assert ids == run.ids[:30]
    np.testing.assert_allclose(probabilities, run.probabilities()[:30], rtol=1e-5, atol=1e-6)
    others = distilled.exclude(run.ids)
    assert run.predict(others)[1].shape == (len(others), len(run.classes))
