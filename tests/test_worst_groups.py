"""The four groups a class and a concept define (class in the ground truth × concept present), with
student and teacher accuracy: counted by hand, returned by the SDK, kept with a 👎's revision and
said in its answer (issue "No class left behind")."""

import fiftyone.operators as foo
import numpy as np
import pytest
from scipy.special import expit

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.groups import GROUPS, balanced_rows, group_accuracies, presence_threshold, worst
from fiftyone_inficond.students.registry import load_students, train_students


def test_each_groups_size_and_accuracy_are_those_counted_by_hand():
    truth = [1, 1, 1, 1, 0, 0, 0, 0]
    present = [1, 1, 0, 0, 1, 1, 0, 0]
    teacher = [1, 1, 0, 0, 1, 0, 0, 0]  # right on cars with the concept, wrong on those without
    student = [1, 1, 1, 0, 0, 0, 0, 1]
    rows = group_accuracies(truth, teacher, student, present)
    assert [(r["class"], r["concept"], r["samples"], r["teacher"], r["student"]) for r in rows] == [
        (True, True, 2, 1.0, 1.0), (True, False, 2, 0.0, 0.5), (False, True, 2, 0.5, 1.0), (False, False, 2, 1.0, 0.5)]
    assert worst(rows, "teacher") == 0.0 and worst(rows, "student") == 0.5


def test_a_concept_is_present_from_the_cut_between_its_two_modes_not_its_median():
    values = np.concatenate([np.random.default_rng(0).normal(0.05, 0.01, 90),
                             np.random.default_rng(1).normal(0.6, 0.05, 10)])  # present in a tenth
    threshold = presence_threshold(values)
    assert 0.1 < threshold < 0.45 and int((values >= threshold).sum()) == 10
    assert (np.zeros(5) >= presence_threshold(np.zeros(5))).sum() == 0  # never present: nothing is


def test_the_sdks_groups_match_a_hand_count_and_a_thumbs_down_keeps_them_before_and_after(distilled):
    distilled.take(80, seed=0).tag_samples("train")
    run = train_students(distilled, key="g", train_tag="train", epochs=2, budget=None)
    cls = "person"
    concept = run.uses(cls)[0][0]
    result = run.worst_groups(cls, concept)
    assert result["split"] == "validation"
    rows = ~run.data.train
    c, j = run.classes.index(cls), run.concepts.index(concept)
    present = run.data.concepts[rows, j] >= result["threshold"]
    truth = run.data.truth[rows, c]
    teacher = run.data.teacher[rows, c] >= run.threshold
    student = expit(run.logits()[rows, c]) >= run.threshold
    for row in result["groups"]:
        members = (truth == row["class"]) & (present == row["concept"])
        assert row["samples"] == int(members.sum())
        if row["samples"]:
            assert row["teacher"] == float(np.mean(teacher[members] == row["class"]))
            assert row["student"] == float(np.mean(student[members] == row["class"]))

    answer = foo.execute_operator("@inficond/inficond/tune_students", ctx=dict(view=distilled.view(), params=dict(
        key="g", down={cls: [concept]}, epochs=1))).result
    assert f"Worst group of {cls} × {concept} on held-out samples: " in answer["message"]
    tuned = load_students(distilled, "g")
    (kept,) = tuned.history[-1]["worst_groups"]
    assert (kept["class"], kept["concept"], kept["before"]) == (cls, concept, result["groups"])
    assert kept["after"] == tuned.worst_groups(cls, concept)["groups"]


def test_rebalanced_rows_weigh_the_four_groups_alike():
    rows = np.arange(20)
    truth = np.array([1] * 10 + [0] * 10, bool)
    present = np.array([1] * 9 + [0] * 1 + [1] * 2 + [0] * 8, bool)  # the class nearly always with the concept
    picked = balanced_rows(rows, truth, present)
    sizes = [int(((truth[picked] == c) & (present[picked] == p)).sum()) for c, p in GROUPS]
    assert sizes == [9, 9, 9, 9] and sorted(picked[:9]) == list(range(9))  # the largest group kept whole


def test_a_thumbs_down_rebalances_by_default_where_there_is_ground_truth_and_says_so(distilled):
    distilled.take(80, seed=0).tag_samples("train")
    run = train_students(distilled, key="r", train_tag="train", epochs=1, budget=None)
    concept, weight = run.uses("person")[0]
    entry = run.tune(down={"person": [concept]}, epochs=1)  # the default with ground truth
    after = run.weight[run.classes.index("person"), run.concepts.index(concept)]
    assert entry["rebalance"] and abs(after) < abs(weight)  # the 👎 holds on rebalanced rows too
    blind = train_students(distilled, key="blind", train_tag="train", gt_field=None, epochs=1, budget=None)
    with pytest.raises(InvalidRequest, match="has no ground truth to rebalance by"):
        blind.tune(down={"person": [blind.uses("person")[0][0]]}, rebalance=True)
    assert blind.tune(down={"person": [blind.uses("person")[0][0]]}, epochs=1)["rebalance"] is False  # bounds only
