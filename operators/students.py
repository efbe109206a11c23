"""Train, tune, revert, list, rename and delete student runs."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.fiftyone_api import run_keys
from fiftyone_inficond.runs import CONCEPTS_METHOD, TEACHER_METHOD
from fiftyone_inficond.students.budget import usage
from fiftyone_inficond.students.evaluation import SPLITS
from fiftyone_inficond.students.registry import (
    delete_students,
    extend_students,
    list_student_runs,
    load_students,
    open_students,
    rename_students,
    student_history,
    train_students,
)

from .common import (
    add_target_view,
    choice_input,
    chosen,
    form,
    label_fields,
    message_output,
    note_input,
    operator_config,
    progress_reporter,
    revision_input,
    run_key_input,
)
from .ui import caveats, tuned_message
from .workspace import open_workspace

SUMMARY_NAMES = {"teacher_ap": "teacher AP", "student_ap": "student AP", "agreement_ap": "agreement AP",
                 "f1": "F1 vs teacher", "precision": "precision vs teacher", "recall": "recall vs teacher"}


def _summary(summary):
    return ", ".join(f"{SUMMARY_NAMES.get(name, name)} {value:.3f}"
                     for name, value in summary.items() if value is not None)


class TrainStudents(foo.Operator):
    @property
    def config(self):
        return operator_config("train_students", "train students", "One linear concept student per class", True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_target_view(ctx, inputs, "Train on")
        inputs.str("key", default="students", label="Run key")
        dataset = ctx.dataset
        choice_input(ctx, inputs, "concepts_field", run_keys(dataset, CONCEPTS_METHOD), "Concepts field", "concepts",
                     missing="Compute concepts first")
        choice_input(ctx, inputs, "teacher_field", run_keys(dataset, TEACHER_METHOD), "Teacher field", "teacher",
                     missing="Import teacher scores first")
        choice_input(ctx, inputs, "gt_field", label_fields(dataset), "Ground truth", "ground_truth",
                     none="None: compare with the teacher only")
        choice_input(ctx, inputs, "train_tag", dataset.distinct("tags"), "Train on samples tagged", none="All samples",
                     description="The others are held out: every figure is then on samples the students never saw")
        inputs.int("budget", label="At most this many concepts per class (optional)",
                   description="Empty: each class's number is chosen from the data")
        inputs.int("epochs", default=10, label="Epochs")
        inputs.float("l1", default=1e-4, label="L1 weight (λ)")
        inputs.int("seed", default=0, label="Seed")
        inputs.bool("keep_class_concepts", default=False, label="Keep concepts that name a class",
                    description="Off: a concept such as 'car' is left out of every student, so that none is "
                                "explained by its own class name")
        inputs.bool("overwrite", default=False, label="Replace an existing run with this key")
        inputs.bool("open_workspace", default=True, label="Open the InFiConD panels when trained",
                    description="Saves the InFiConD workspace on this dataset and shows it")
        return form(inputs, "Train students")

    def execute(self, ctx):
        p = ctx.params
        run = train_students(
            ctx.target_view(),
            key=p.get("key", "students"),
            concepts_field=p.get("concepts_field", "concepts"),
            teacher_field=p.get("teacher_field", "teacher"),
            gt_field=chosen(p, "gt_field"),
            train_tag=chosen(p, "train_tag"),
            epochs=p.get("epochs", 10),
            l1=p.get("l1", 1e-4),
            seed=p.get("seed", 0),
            budget="auto" if p.get("budget") is None else p["budget"],
            user=ctx.user_id,
            overwrite=p.get("overwrite", False),
            progress=progress_reporter(ctx, "training epochs"),
            keep_class_concepts=p.get("keep_class_concepts", False),
        )
        split = run.default_split()
        summary = run.performance(split)["summary"]
        used = usage(run.weight)
        message = "  \n".join([
            f"Student run **{run.key}** trained (revision 0). On the {run.split_size(split):,} "
            f"{SPLITS[split].removeprefix('all ')}: "
            f"{_summary(summary)}; each class's student uses {used.min()}–{used.max()} of {len(run.concepts):,} "
            f"concepts ({used.mean():.1f} on average)",
            *caveats(run.facts()),
        ])
        if p.get("open_workspace"):
            message += "  \n" + open_workspace(ctx)
        return {"key": run.key, "revision": run.revision, "split": split, "summary": summary, "message": message}

    def resolve_output(self, ctx):
        return message_output("Trained")


class ExtendStudents(foo.Operator):
    @property
    def config(self):
        return operator_config("extend_students", "extend students",
                               "Train a student run again with the concepts added since, keeping its 👍/👎", True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key_input(ctx, inputs)
        inputs.str("new_key", label="New run key (optional)", description="By default '<run>_extended'")
        return form(inputs, "Extend students")

    def execute(self, ctx):
        key = ctx.params["key"]
        run = extend_students(ctx.dataset, key, ctx.params.get("new_key") or None, user=ctx.user_id)
        extends = run.history[0]["extends"]
        message = (f"Student run **{run.key}** trained with {', '.join(extends['added'])} added, the bounds of "
                   f"**{key}** revision {extends['revision']} kept: {_summary(run.performance()['summary'])}")
        return {"key": run.key, "extends": extends, "message": message}

    def resolve_output(self, ctx):
        return message_output("Extended")


class TuneStudents(foo.Operator):
    @property
    def config(self):
        return operator_config("tune_students", "tune students", "Up-tune (👍) or down-tune (👎) concepts and retrain")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = run_key_input(ctx, inputs)
        if key is not None:  # choices from the run: its classes and its concepts
            run = open_students(ctx.dataset, key)
            classes = types.AutocompleteView(choices=[types.Choice(c, label=c) for c in run.classes])
            inputs.enum("class", run.classes, label="Class", view=classes,
                        description="The class whose concepts to tune")
            concepts = [types.Choice(c, label=c) for c in run.concepts]
            inputs.list("up_concepts", types.String(), label="👍 Up-tune concepts",
                        view=types.AutocompleteView(choices=concepts, allow_user_input=False))
            inputs.list("down_concepts", types.String(), label="👎 Down-tune concepts",
                        view=types.AutocompleteView(choices=concepts, allow_user_input=False))
            chosen_class = ctx.params.get("class")
            budget = run.budget_of(chosen_class) if chosen_class in run.classes else None
            inputs.int("budget", label="Concepts the class may use (optional)", min=1, max=len(run.concepts),
                       description=f"Now {budget or 'every concept'}: more lets its student take in more concepts")
        inputs.float("factor", default=1.5, label="Factor (> 1)")
        inputs.int("epochs", default=3, label="Retraining epochs")
        inputs.bool("erase", default=False, label="Erase the 👎'd concepts from the others",
                    description="Retrain on concept vectors that no longer tell the 👎'd concepts, so no "
                                "correlate takes their place")
        note_input(inputs)
        return form(inputs, "Tune students")

    def execute(self, ctx):
        p = ctx.params
        # Python callers give {class: [concepts]}; the App form gives one class at a time.
        up, down, budgets = p.get("up") or {}, p.get("down") or {}, p.get("budgets")
        if p.get("class"):
            up = {p["class"]: p.get("up_concepts") or []}
            down = {p["class"]: p.get("down_concepts") or []}
            budgets = None if p.get("budget") is None else {p["class"]: p["budget"]}
        run = load_students(ctx.dataset, p["key"])
        entry = run.tune(up=up, down=down, factor=p.get("factor", 1.5), epochs=p.get("epochs", 3), user=ctx.user_id,
                         note=p.get("note"), erase=p.get("erase") or False,  # a form may send no value
                         progress=progress_reporter(ctx, "retraining epochs"), budgets=budgets)
        # the Fine-tune button's answer, on the split the panels show first
        message = tuned_message(entry, run.default_split())
        return {"revision": entry["revision"], "change": entry["change"], "metrics_after": entry["metrics_after"],
                "message": message}

    def resolve_output(self, ctx):
        return message_output("Tuned")


class RevertStudents(foo.Operator):
    @property
    def config(self):
        return operator_config("revert_students", "revert students", "Restore an earlier iteration exactly")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = run_key_input(ctx, inputs)
        if key is not None:
            revision_input(ctx, inputs, key, "Revision to restore")
        note_input(inputs)
        return form(inputs, "Revert students")

    def execute(self, ctx):
        run = load_students(ctx.dataset, ctx.params["key"])
        entry = run.revert(ctx.params.get("revision"), user=ctx.user_id, note=ctx.params.get("note"))
        message = (f"Revision **{entry['revision']}** saved: weights of revision {entry['reverted_to']} restored "
                   f"({_summary(entry['metrics_after'])})")
        return {"revision": entry["revision"], "reverted_to": entry["reverted_to"], "message": message}

    def resolve_output(self, ctx):
        return message_output("Reverted")


class NoteRevision(foo.Operator):
    @property
    def config(self):
        return operator_config("note_revision", "write a note on a revision",
                               "Why a revision was made, written on it at any time (blank removes it)")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = run_key_input(ctx, inputs)
        if key is not None:
            revision_input(ctx, inputs, key, "Revision")
        note_input(inputs)
        return form(inputs, "Write a note")

    def execute(self, ctx):
        p = ctx.params
        run = open_students(ctx.dataset, p["key"])
        revision = run.revision if p.get("revision") is None else p["revision"]
        run.annotate(revision, p.get("note"), user=ctx.user_id)
        note = " ".join((p.get("note") or "").split())
        message = (f"Note on revision **{revision}** of **{p['key']}** saved: “{note}”" if note
                   else f"Note on revision **{revision}** of **{p['key']}** removed")
        return {"revision": revision, "note": note, "message": message}

    def resolve_output(self, ctx):
        return message_output("Noted")


class ListStudentRuns(foo.Operator):
    @property
    def config(self):
        return operator_config("list_student_runs", "list student runs", "Student runs and their history",
                               dynamic=False)

    def execute(self, ctx):
        runs = {}
        for key in list_student_runs(ctx.dataset):
            history = student_history(ctx.dataset, key)
            runs[key] = [
                {**{k: entry.get(k) for k in ("revision", "kind", "user", "instructions")}, "time": str(entry["time"])}
                for entry in history
            ]
        lines = [_run_line(key, history) for key, history in runs.items()]
        return {"runs": runs, "message": "\n".join(lines) or "No student runs yet: run *train students*"}

    def resolve_output(self, ctx):
        return message_output("Student runs")


def _run_line(key, history):
    if not history:  # an import from another database's run, or a clone's without all of its samples
        return f"- **{key}**: its history did not come with this dataset: train it again to tune it here"
    last = history[-1]
    return (f"- **{key}**: revision {last['revision']}, {len(history)} entries, last by {last['user'] or 'someone'} "
            f"at {last['time']}")


class RenameStudents(foo.Operator):
    @property
    def config(self):
        return operator_config("rename_students", "rename student run", "Rename a student run")

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key_input(ctx, inputs)
        inputs.str("new_key", label="New key", required=True)
        return form(inputs, "Rename student run")

    def execute(self, ctx):
        rename_students(ctx.dataset, ctx.params["key"], ctx.params["new_key"])
        return {"key": ctx.params["new_key"]}


class DeleteStudents(foo.Operator):
    @property
    def config(self):
        return operator_config("delete_students", "delete student run", "Delete a student run and its history")

    def resolve_input(self, ctx):
        inputs = types.Object()
        run_key_input(ctx, inputs)
        return form(inputs, "Delete student run")

    def execute(self, ctx):
        delete_students(ctx.dataset, ctx.params["key"])
        return {"deleted": ctx.params["key"]}
