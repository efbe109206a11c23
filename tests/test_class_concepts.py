"""Concepts that name a class are left out of a run's students unless the user keeps them, and
the run, the SDK and the App say which (issue "No class left behind")."""

import fiftyone.operators as foo
import numpy as np
import pytest

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.registry import load_students, train_students
from fiftyone_inficond.synonyms import class_concepts

PLUGIN = "@inficond/inficond"


def test_a_concept_names_a_class_up_to_case_spaces_and_a_plural():
    names = ["Car", "cars", "carpet", "traffic light", "traffic-lights", "sky", "bus"]
    assert class_concepts(names, ["car", "traffic light", "dog"]) == {0: "car", 1: "car", 3: "traffic light",
                                                                      4: "traffic light"}


def test_concepts_naming_a_class_are_left_out_of_every_student_listed_and_kept_on_request(distilled):
    run = train_students(distilled, key="s", epochs=1)  # Broden holds COCO's person, car, dog, ...
    names, classes = run.concepts, run.classes
    expected = {names[j]: cls for j, cls in class_concepts(names, classes).items()}
    assert {"person", "car", "dog"} <= set(expected) and run.left_out == expected
    columns = [names.index(name) for name in expected]
    assert not run.weight[:, columns].any()  # no student uses one
    assert load_students(distilled, "s").left_out == expected and run.facts()["left_out"] == expected
    with pytest.raises(InvalidRequest, match="'dog' names the class 'dog', so student run 's' leaves it out"):
        run.tune(up={"cat": ["dog"]}, epochs=1)

    kept = train_students(distilled, key="kept", epochs=1, budget=None, keep_class_concepts=True)
    assert kept.left_out == {} and np.abs(kept.weight[:, columns]).max() > 0


def test_the_train_answer_lists_the_concepts_left_out(distilled):
    answer = foo.execute_operator(f"{PLUGIN}/train_students", ctx=dict(view=distilled.view(), params=dict(
        key="s", epochs=1, open_workspace=False))).result
    left_out = sorted(load_students(distilled, "s").left_out)
    assert (f"ℹ️ Left out because they name a class: {', '.join(left_out[:8])} and {len(left_out) - 8} more"
            in answer["message"])
