"""Provenance: every iteration of the student run (train, tune, revert), who and when, what was
tuned and what it changed; compare any entry with the current one, per class, and revert to it;
write a note on any entry, at any time."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.students.evaluation import SPLITS, entry_metrics

from ..operators.ui import PLUGIN, THUMBS, dropdown, pct, signed_pct
from .base import WorkbenchPanel, answers
from .fine_tune import NOTE_HINT
from .workarounds import draw_text
from .workbench import PROVENANCE, open_run, read_workbench, write_workbench

METRICS = {"student_ap": "student AP", "agreement_ap": "agreement AP", "f1": "F1 vs teacher"}
PER_CLASS = 10  # the classes whose student AP changed most, listed under a comparison
NOTE_BOX = "note_text"  # the note row's box


class ProvenancePanel(WorkbenchPanel):
    shows = frozenset({"run", "revision", "compare", "split", "note_on"})

    @property
    def config(self):
        return foo.PanelConfig(
            name=PROVENANCE,
            label="Provenance",
            icon="history",
            help_markdown=(
                "Every iteration of the student run, newest first. Pick an entry to compare it with the "
                "current one, per class; **Revert** restores its weights exactly, as a new entry (nothing is "
                "lost). **Save note** writes why on any entry, at any time. "
                "**Export** saves a revision as a model that predicts without FiftyOne; **Predict with an "
                "export** writes its labels on samples."
            ),
        )

    @answers
    def on_change_compare(self, ctx):
        self.change(ctx, compare=ctx.params["value"])

    @answers
    def on_revert(self, ctx):
        workbench = read_workbench(ctx)
        run = self.run_to_save_on(ctx, workbench)
        target = None if run is None else _compared(workbench, run.history)
        if target is None:
            return
        entry = run.revert(int(target), user=ctx.user_id)
        metrics = entry_metrics(entry, workbench["split"])
        workbench.update(revision=entry["revision"], **self.says(
            f"✅ Revision {entry['revision']} saved: reverted to revision {target} · mean student AP "
            f"{pct(metrics['before']['student_ap'])} → {pct(metrics['after']['student_ap'])} "
            f"({SPLITS[workbench['split']]})"
        ))
        self.publish(ctx, workbench)

    @answers
    def on_change_note_on(self, ctx):
        self.change(ctx, note_on=ctx.params["value"])

    @answers
    def on_change_revision_note(self, ctx):
        """The note as it is being typed: kept in the workbench for Save note, never sent back to its
        box (as the knowledge panel's tuning boxes, see its ``_setting``). One box for every revision:
        the App kept drawing a box renamed for the revision picked under its old name."""
        if ctx.params.get("path") == f"note_row.{NOTE_BOX}":
            workbench = read_workbench(ctx)
            workbench["revision_note"] = str(ctx.params.get("value") or "")
            write_workbench(ctx, workbench)

    @answers
    def on_save_note(self, ctx):
        """The note typed in the note row, written on the revision chosen there."""
        workbench = read_workbench(ctx)
        run = open_run(ctx, workbench)
        revision = _noted(workbench, run.history)
        # the box as the App holds it now (its panel state comes with the press), else as typed: the last
        # keystroke's change can arrive after the press, or an older one after a newer
        note = (ctx.panel.state.get("note_row") or {}).get(NOTE_BOX)
        note = workbench["revision_note"] if note is None else str(note)
        if note is None:
            return self.change(ctx, message=f"Type the note on revision {revision} first, then Save note")
        run.annotate(int(revision), note, user=ctx.user_id)
        said = f"📝 Note on revision {revision} saved: “{' '.join(note.split())}”" if note.strip() else (
            f"📝 Note on revision {revision} removed")
        self.change(ctx, message=said)

    @answers
    def on_export(self, ctx):
        """The export form, on this run at its current revision (both can be changed there)."""
        workbench = read_workbench(ctx)
        ctx.prompt(f"{PLUGIN}/export_students", params={"key": workbench["run"], "revision": workbench["revision"]})

    @answers
    def on_apply_export(self, ctx):
        ctx.prompt(f"{PLUGIN}/apply_student_export")

    def fill(self, ctx, workbench, run):
        history, split = run.history, workbench["split"]
        compare, noted = _compared(workbench, history), _noted(workbench, history)
        ctx.panel.state.set({
            "ready": True,
            "summary": _cumulative(run.key, history, split),
            "message": self.message(workbench),
            "revisions": _earlier(history)[::-1],
            "all_revisions": [str(entry["revision"]) for entry in history][::-1],
            "compare_row": {"compare": compare},
            "comparison": _comparison(history, compare, split),
            "note_row": {"note_on": noted},
            "change_label": f"Δ mean student AP ({SPLITS[split].removesuffix(' samples')})",
        })
        ctx.panel.set_data("entries", _rows(history, split))
        ctx.panel.set_data("per_class", [] if compare is None else _per_class(run, int(compare), split))

    def draw(self, panel, state, charts):
        """The summary, the answer and the controls first (an answer shows beside what was pressed,
        not below two tables), then the history and the comparison."""
        draw_text(panel, state, "summary")
        if state.message:
            draw_text(panel, state, "message")
        if state.revisions:
            compare = panel.h_stack("compare_row", align_x="left", align_y="center", gap=2)
            compare.enum("compare", state.revisions, label="Compare with",
                         view=dropdown({r: f"revision {r}" for r in state.revisions}), on_change=self.on_change_compare)
            compare.btn("revert", label="Revert to it", variant="outlined", on_click=self.on_revert)
        note_row = panel.h_stack("note_row", align_x="left", align_y="center", gap=2)
        revisions = dropdown({r: f"revision {r}" for r in state.all_revisions})
        note_row.enum("note_on", state.all_revisions, label="Note on", view=revisions, on_change=self.on_change_note_on)
        note_row.str(NOTE_BOX, label="Note", view=types.TextFieldView(placeholder=NOTE_HINT),
                     on_change=self.on_change_revision_note)
        note_row.btn("save_note", label="Save note", icon="edit_note", variant="outlined", on_click=self.on_save_note)
        table = types.TableView()
        for key, label in (("revision", "Rev."), ("kind", "What"), ("user", "Who"), ("time", "When (UTC)"),
                           ("instructions", "Tuned"), ("note", "Note"), ("change", state.change_label)):
            table.add_column(key, label=label)
        panel.list("entries", types.Object(), view=table)
        if state.revisions:
            draw_text(panel, state, "comparison")
            per_class = types.TableView()
            for key, label in (("class", "Class"), ("then", "Student AP then"), ("now", "now"), ("change", "Δ pts")):
                per_class.add_column(key, label=label)
            panel.list("per_class", types.Object(), view=per_class)
        deploy = panel.h_stack("deploy_row", align_x="left", align_y="center", gap=2)
        deploy.btn("export", label="Export this run…", icon="save_alt", variant="outlined", on_click=self.on_export)
        deploy.btn("apply_export", label="Predict with an export…", icon="model_training", variant="outlined",
                   on_click=self.on_apply_export)

def _earlier(history):
    return [str(entry["revision"]) for entry in history][:-1]


def _compared(workbench, history):
    """The revision compared with the current one: the user's choice, else the one before."""
    earlier = _earlier(history)
    if workbench["compare"] in earlier:
        return workbench["compare"]
    return earlier[-1] if earlier else None


def _noted(workbench, history):
    """The revision whose note the note row edits: the user's choice, else the current one."""
    revisions = [str(entry["revision"]) for entry in history]
    return workbench["note_on"] if workbench["note_on"] in revisions else revisions[-1]


def _entry(history, revision):
    return next(entry for entry in history if str(entry["revision"]) == revision)


def _per_class(run, revision, split):
    """The :data:`PER_CLASS` classes whose student AP changed most since ``revision``, as table rows."""
    return [{"class": row["class"], "then": pct(row["then"]), "now": pct(row["now"]),
             "change": "–" if row["change"] is None else signed_pct(row["change"])}
            for row in run.compare_classes(revision, split)[:PER_CLASS]]


def _rows(history, split):
    """Table rows, newest first: each entry's change in mean student AP on ``split`` from the one before."""
    rows, previous = [], None
    for entry in history:
        after = entry_metrics(entry, split).get("after", {}).get("student_ap")
        change = "–" if previous is None or after is None else f"{signed_pct(after - previous)} pts"
        rows.append({
            "revision": entry["revision"],
            "kind": _kind(entry),
            "user": entry.get("user") or "",
            "time": entry["time"].replace("T", " ").removesuffix("+00:00"),
            "instructions": _instructions(entry.get("instructions") or []),
            "note": entry.get("note") or "",
            "change": change,
        })
        previous = after
    return rows[::-1]


def _kind(entry):
    if entry.get("reverted_to") is not None:
        return f"revert to {entry['reverted_to']}"
    if entry.get("extends"):
        extends = entry["extends"]
        return f"train: {extends['key']} rev. {extends['revision']} + {', '.join(extends['added'])}"
    return entry["kind"]


def _instructions(instructions):
    return ", ".join(f"{THUMBS[i['direction']]} {i['concept']} ({i['class']})" for i in instructions) or "–"


def _cumulative(key, history, split):
    first, last = (entry_metrics(history[i], split).get("after", {}) for i in (0, -1))
    changes = " · ".join(
        f"{label} {pct(first.get(m))} → {pct(last.get(m))}"
        + (f" ({signed_pct(last[m] - first[m])} pts)" if first.get(m) is not None and last.get(m) is not None else "")
        for m, label in METRICS.items()
    )
    tunes = sum(entry["kind"] == "tune" for entry in history)
    return f"**{key}**: {len(history)} entries, {tunes} fine-tunes. Since training ({SPLITS[split]}): {changes}"


def _comparison(history, revision, split):
    if revision is None:
        return ""
    then = entry_metrics(_entry(history, revision), split).get("after", {})
    now = entry_metrics(history[-1], split).get("after", {})
    parts = [f"{label} {pct(then.get(m))} then, {pct(now.get(m))} now" for m, label in METRICS.items()]
    return (f"Revision {revision} vs current (revision {history[-1]['revision']}), {SPLITS[split]}: "
            + " · ".join(parts) + f". The {PER_CLASS} classes that changed most:")
