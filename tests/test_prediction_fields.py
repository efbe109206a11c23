"""A run's students and its teacher as label fields: written where FiftyOne users look, read back
exactly, filterable in the sidebar, and never over labels this plugin did not write."""

import fiftyone.operators as foo
import numpy as np
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError
from scipy.special import expit

from fiftyone_inficond import InvalidRequest, train_students, write_student_labels, write_teacher_labels

PLUGIN = "@inficond/inficond"


@pytest.fixture
def run(distilled):
    return train_students(distilled, key="labelled", epochs=2, budget=8)


def _confidences(samples, field, ids, classes, attribute="confidence"):
    """``(n, k)`` values of ``attribute`` per class (NaN where a class has no label)."""
    out = np.full((len(ids), len(classes)), np.nan)
    by_id = dict(zip(*samples.values(["id", field])))
    for i, sample_id in enumerate(ids):
        for label in by_id[sample_id].classifications:
            out[i, classes.index(label.label)] = label[attribute]
    return out


def test_every_class_written_reads_back_as_the_students_probabilities_and_logits(run):
    assert write_student_labels(run, "student", positives_only=False, logits=True) == len(run.ids)
    logits = run.logits()
    read = _confidences(run.samples, "student", run.ids, run.classes)
    np.testing.assert_allclose(read, expit(logits), rtol=1e-6)
    np.testing.assert_allclose(_confidences(run.samples, "student", run.ids, run.classes, "logit"), logits, rtol=1e-6)


def test_positives_only_holds_exactly_the_classes_at_the_threshold_and_the_sidebar_can_compare(run):
    write_student_labels(run, "student")
    write_teacher_labels(run, "teacher_labels")
    teacher = _confidences(run.samples, "teacher_labels", run.ids, run.classes)
    assert np.array_equal(~np.isnan(teacher), run.data.teacher >= run.threshold)
    np.testing.assert_allclose(teacher[~np.isnan(teacher)], run.data.teacher[run.data.teacher >= run.threshold])
    person = run.classes.index("person")
    teacher_only = (run.data.teacher[:, person] >= run.threshold) & (expit(run.logits()[:, person]) < run.threshold)
    view = (run.samples.match(F("teacher_labels.classifications.label").contains("person"))
            .match(~F("student.classifications.label").contains("person")))
    assert len(view) == teacher_only.sum() > 0


def test_an_older_revision_writes_its_own_probabilities(run):
    before = run.logits()
    (concept, _), = run.top_concepts("person", n=1)
    run.tune(down={"person": [concept]}, factor=3.0, epochs=2)
    assert run.revision == 1 and not np.allclose(run.logits(), before)
    write_student_labels(run, "student", revision=0, positives_only=False)
    np.testing.assert_allclose(_confidences(run.samples, "student", run.ids, run.classes), expit(before), rtol=1e-6)


@pytest.mark.parametrize("field, held", [("ground_truth", "ground truth"), ("teacher", "teacher scores"),
                                         ("concepts", "concept vectors"), ("theirs", "did not predict")])
def test_no_field_the_plugin_did_not_write_is_overwritten(run, field, held):
    if field == "theirs":
        run.samples.clone_sample_field("ground_truth", "theirs")
    before = repr(run.samples.values(field))
    with pytest.raises(InvalidRequest, match=held):
        write_student_labels(run, field)
    assert repr(run.samples.values(field)) == before


def test_the_operator_writes_both_fields_and_says_where(run):
    ctx = dict(view=run.samples.view(), params={"key": "labelled", "student_field": "s", "teacher_field": "t"})
    result = foo.execute_operator(f"{PLUGIN}/write_student_labels", ctx=ctx).result
    assert result["samples"] == len(run.ids) and result["revision"] == 0
    assert "**s** (run labelled, revision 0) and **t** written on 128 samples" in result["message"]
    assert run.samples.count("s.classifications") > 0 and run.samples.count("t.classifications") > 0
    same = dict(ctx, params={"key": "labelled", "student_field": "t", "teacher_field": "t"})
    with pytest.raises(ExecutionError, match="both write 't': choose two different fields"):
        foo.execute_operator(f"{PLUGIN}/write_student_labels", ctx=same)


def test_the_form_refuses_the_ground_truth_at_the_input_and_names_a_free_field(run):
    from fiftyone.operators.executor import ExecutionContext

    params = {"key": "labelled", "student_field": "ground_truth", "teacher_field": "fresh"}
    ctx = ExecutionContext(request_params={"dataset_name": run.samples.name, "params": params})
    inputs = foo.get_operator(f"{PLUGIN}/write_student_labels").resolve_input(ctx).type.properties
    student, teacher = inputs["student_field"], inputs["teacher_field"]
    assert student.invalid and "the ground truth student run 'labelled' is evaluated against" in student.error_message
    assert "predict into 'student' instead" in student.error_message
    assert not teacher.invalid
