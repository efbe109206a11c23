"""The scripted expert on one tiny world: it decides from what the panels show, tunes and logs."""

import re

import pytest
from conftest import unique_name

from fiftyone_inficond.demo import build_world
from fiftyone_inficond.students.registry import delete_students, list_student_runs, load_students
from fiftyone_inficond.world.expert import CONTEXT, TOLERATED_DROP, context_for, decide, own_concepts, shown, tune_class

LINE = re.compile(r"^(👍|👎) (\S+) for (\S+): (context(?: \(\w+'s colour\))?|part of \S+), weight [+-]\d+\.\d\d"
                  r"(, \d+(?:st|nd|rd|th) by | on the concept map)")


@pytest.fixture(scope="module")
def world(tmp_path_factory, world_teacher_model):
    dataset, _ = build_world(unique_name("inficond-expert"), n=60, images=str(tmp_path_factory.mktemp("world")),
                             teacher=world_teacher_model)
    yield dataset
    for key in list_student_runs(dataset):
        delete_students(dataset, key)
    dataset.delete()


def test_the_expert_knows_parts_and_context():
    assert own_concepts("airplane") >= {"body", "wing", "tail", "grey"} and "cloud" not in own_concepts("airplane")
    assert {"cloud", "sun", "rock", "sky", "water"} <= CONTEXT and not CONTEXT & own_concepts("boat")


def test_where_a_class_stands_is_not_context_and_a_downtuned_things_colour_is():
    assert {"grass", "road"}.isdisjoint(context_for("bicycle")) and "sky" not in context_for("airplane")
    assert {"sun", "cloud", "sky", "water"} <= set(context_for("bicycle")) and "yellow" not in context_for("bicycle")
    assert context_for("bicycle", ["sun"])["yellow"] == "context (sun's colour)"
    # unless the class's own parts wear it: airplanes' wings and tails are grey like rocks, trees' leaves yellow
    assert "grey" not in context_for("airplane", ["rock"]) and "yellow" not in context_for("tree", ["sun"])


def test_a_context_concept_the_student_relies_on_is_down_tuned_first(world):
    run = load_students(world, "students")
    cls = "airplane"
    row = run.weight[run.classes.index(cls)]
    row[run.concepts.index("cloud")] = 2 * abs(row).max()  # as a student that learnt "airplanes under clouds"
    first = decide(run, cls)[0]
    assert (first.concept, first.direction) == ("cloud", "down")
    assert str(first).startswith("👎 cloud for airplane: context, weight +") and "1st by weight" in str(first)


def test_the_expert_tunes_the_worst_class_from_what_the_panels_show_and_logs_why(world):
    run = load_students(world, "students")
    # what the performance panel shows first
    cls = run.performance("validation", sort_by="ap_gap")["classes"][0]["class"]
    shown_before = shown(run, cls)
    lines = []
    result = tune_class(run, cls, "validation", max_iterations=3, log=lines.append)

    assert lines == [line for iteration in result["decisions"] for line in iteration]
    tuned = [[line for line in iteration if not line.startswith("↩")] for iteration in result["decisions"]]
    assert all(1 <= len(iteration) <= 4 for iteration in tuned)
    for line in (line for iteration in tuned for line in iteration):
        thumb, concept, named, kind, _ = LINE.match(line).groups()
        assert named == cls
        assert (kind == context_for(cls, CONTEXT)[concept]) if thumb == "👎" else (concept in own_concepts(cls))
        assert thumb == "👎" or kind == f"part of {cls}"
    for line in tuned[0] if tuned else ():  # decided from what the knowledge panel or the concept map showed
        concept = line.split(" ")[1]
        assert concept in shown_before or ("on the concept map" in line and concept in context_for(cls))
    history = load_students(world, "students").history
    tunes = [e for e in history if e["kind"] == "tune" and e["user"] == "scripted expert"]
    reverts = [e for e in history if e["kind"] == "revert" and e["user"] == "scripted expert"]
    assert len(tunes) == result["iterations"] <= 3
    assert len(reverts) == sum(iteration[-1].startswith("↩ revert") for iteration in result["decisions"])
    # a tune that made it clearly worse was reverted
    assert result["after"] >= result["before"] - TOLERATED_DROP * result["iterations"]
    # It stops at the teacher (relying on no context it is shown), without decisions, or after 3 iterations.
    stopped = {"at the teacher": result["after"] >= result["teacher"], "3 iterations": result["iterations"] == 3,
               "nothing left to change": result["after"] < result["teacher"]}
    assert stopped[result["stopped"]], result
