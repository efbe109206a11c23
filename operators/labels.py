"""Write a student run's revision and its teacher as label fields, for the sidebar and every
FiftyOne tool: each field name is checked as the library will check it, at the input, before
anything runs."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.labels import require_prediction_field
from fiftyone_inficond.students.predictions import write_student_labels, write_teacher_labels
from fiftyone_inficond.students.registry import open_students

from .common import form, message_output, operator_config, progress_reporter, refusal, revision_input, run_key_input


class WriteStudentLabels(foo.Operator):
    @property
    def config(self):
        return operator_config("write_student_labels", "write predictions as labels",
                               "The students' and the teacher's classes as label fields, to filter and compare", True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = run_key_input(ctx, inputs)
        if key is not None:
            revision_input(ctx, inputs, key, "Revision")
            for name, default, what in (("student_field", f"{key}_labels", "The students' classes"),
                                        ("teacher_field", "teacher_labels", "The teacher's classes")):
                typed = ctx.params.get(name)
                inputs.str(name, default=default, required=True, label=f"{what} go to",
                           description="A new field, or one that earlier predictions wrote",
                           **refusal(typed, require_prediction_field, ctx.dataset, typed))
        inputs.bool("positives_only", default=True, label="Only the classes each calls positive",
                    description="Off: every class with its probability (for precision-recall curves)")
        return form(inputs, "Write predictions as labels")

    def execute(self, ctx):
        p = ctx.params
        run = open_students(ctx.dataset, p["key"])
        revision = run.revision if p.get("revision") is None else p["revision"]
        student_field = p.get("student_field") or f"{p['key']}_labels"
        teacher_field = p.get("teacher_field") or "teacher_labels"
        positives_only = p.get("positives_only", True)
        if student_field == teacher_field:
            raise InvalidRequest(f"The students and the teacher would both write '{student_field}': "
                                 "choose two different fields")
        # Both checked before either is written: a refused teacher field leaves no student field behind.
        require_prediction_field(run.samples, student_field)
        require_prediction_field(run.samples, teacher_field, suggestion="teacher_labels")
        count = write_student_labels(run, student_field, revision, positives_only,
                                     progress=progress_reporter(ctx, "student labels"))
        write_teacher_labels(run, teacher_field, positives_only, progress=progress_reporter(ctx, "teacher labels"))
        if not ctx.delegated:
            ctx.ops.reload_dataset()  # the App learns the new label fields
        message = (f"**{student_field}** (run {p['key']}, revision {revision}) and **{teacher_field}** written on "
                   f"{count:,} samples: filter either by label in the sidebar to compare them")
        return {"samples": count, "revision": revision, "message": message}

    def resolve_output(self, ctx):
        return message_output("Written")
