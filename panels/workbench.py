"""The per-person workbench: what a person has on screen in the InFiConD panels.

**One workbench per person**, in FiftyOne's execution store (MongoDB): the student run, class and
split on screen, the pending 👍/👎 and the tuning settings. Every panel reads it, so selecting a
class in one panel moves the others, and a reload or a restarted App loses nothing the user chose
or typed. Runs are shared; workbenches are not. Where FiftyOne knows users, the person is theirs;
open-source FiftyOne calls everyone "local", and each colleague runs their own App on the shared
database, so there the person is the OS user and machine running the App server, the name the run
history records a save under ("alice saved revision 3"). Browsers of one App mirror one session
(FiftyOne shares its view, tabs and panel state among them): one seat, one workbench. Panel state
is only what the panel shows now.

A panel event reads the workbench once (:class:`_Event`), opens the run once, and writes the
workbench once, at its end, in one atomic compare-and-set (:func:`save_workbench`).
"""

import copy
import json
import socket

from fiftyone_inficond.students.registry import list_student_runs, open_students
from fiftyone_inficond.students.run import DEFAULT_TUNING_EPOCHS
from fiftyone_inficond.students.store import current_user

from ..operators.ui import entry_minute

STORE = "inficond"


PERFORMANCE, KNOWLEDGE, PROVENANCE = "inficond_performance", "inficond_knowledge", "inficond_provenance"


EMBEDDING, DETAIL, WHY = "inficond_embedding", "inficond_concept", "inficond_why"


PANELS = (PERFORMANCE, KNOWLEDGE, PROVENANCE, EMBEDDING, DETAIL, WHY)

DEFAULTS = {
    "run": None,  # student run key
    "revision": None,  # the revision the user last saw
    "cls": None,  # class name
    "split": None,  # metrics split; the run's held-out split by default
    "pending": [],  # [{"class", "concept", "direction"}], not yet applied
    "budgets": {},  # {class: n}: how many concepts a class may use from the next fine-tune on, not yet applied
    "factor": 1.5,
    "epochs": DEFAULT_TUNING_EPOCHS,
    "note": "",  # why the next fine-tune is made, as typed beside Fine-tune
    "sort": "ap_gap",  # performance: the metric classes are sorted by
    "order": "worst first",
    "by": "weight",  # knowledge: how concepts are ranked
    "n": 10,  # knowledge: how many concepts
    "compare": None,  # provenance: the revision compared with the current one
    "note_on": None,  # provenance: the revision whose note is edited; the current one by default
    "revision_note": None,  # provenance: {"revision", "text"}: the note being typed for that revision
    "concept": None,  # concept name: the concept detail's
    "focus": [],  # concept names selected on the concept map: the knowledge panel ranks only these
    "method": "tsne",  # concept map projection
    "search": "",  # the phrase typed in the concept search
    "message": None,  # what the last action did, or why it was refused
    "message_by": None,  # the panel whose action the message answers; None: every panel's (a colleague's save)
}


def workbench_key(ctx):
    """The workbench of the person at this App: their FiftyOne user, else the OS user and machine
    of the App server (see the module's docstring)."""
    if ctx.user_id:
        return f"workbench:{ctx.user_id}"
    return f"workbench:local:{current_user()}@{socket.gethostname()}"


def fingerprint(workbench):
    """What a panel showed, in short: the workbench it showed, as one string."""
    return json.dumps(workbench, sort_keys=True, default=str)


class _Event:
    """One panel event's workbench and run: the workbench read from the store once, the run
    opened once, and the workbench written once, at the end, if it changed. The sibling panels
    shown in the same answer share it."""

    def __init__(self, ctx):
        self.key = workbench_key(ctx)
        self.raw = ctx.store(STORE).get(self.key)  # as stored: what a save compares with
        self.stored = {**DEFAULTS, **(self.raw or {})}
        self.workbench = copy.deepcopy(self.stored)
        self.run_keys = None  # the dataset's student runs, as listed in this event
        self.runs = {}  # run key -> the run, opened in this event

    def changed(self):
        """The workbench keys this event changed, its message aside."""
        return {key for key, value in self.workbench.items() if key != "message" and self.stored.get(key) != value}


def _event(ctx):
    event = getattr(ctx, "_inficond_event", None)
    if event is None:
        event = ctx._inficond_event = _Event(ctx)
    return event


def read_workbench(ctx):
    """The workbench as this event has it (a copy: change it, then :func:`write_workbench`)."""
    return copy.deepcopy(_event(ctx).workbench)


def write_workbench(ctx, workbench):
    """Keeps ``workbench`` as this event's; it reaches the store once, when the event ends."""
    _event(ctx).workbench = copy.deepcopy(workbench)


SAVE_TRIES = 50  # compare-and-sets an event tries before it writes its workbench over whatever is stored


def save_workbench(ctx):
    """The event's end: the keys it changed written over the workbench as stored, in one atomic
    compare-and-set. The App runs events at the same moment (a box's late change while a 👍 is
    answered), as do colleagues' servers: when another event saved first, its changes are kept and
    this one's written over them, where writing the workbench as this event had read it lost the 👍."""
    event = getattr(ctx, "_inficond_event", None)
    if event is None:
        return
    changed = {key: value for key, value in event.workbench.items() if event.stored.get(key) != value}
    if not changed:
        return
    store = ctx.store(STORE)
    for _ in range(SAVE_TRIES):
        value = {**DEFAULTS, **(event.raw or {}), **copy.deepcopy(changed)}
        if (store.set_if_absent(event.key, value) if event.raw is None
                else store.compare_and_set(event.key, event.raw, value)):
            break
        event.raw = store.get(event.key)  # saved meanwhile by another event
    else:  # a workbench no comparison matches (a NaN kept by an earlier version never equals itself)
        store.set(event.key, value)
    event.raw, event.stored = value, copy.deepcopy(value)


def save_workbench_now(ctx):
    """Saves the event's workbench before it ends and returns it as stored: merged over any event
    saved meanwhile (see :func:`save_workbench`), for an answer that must show what that other
    event did."""
    save_workbench(ctx)
    event = _event(ctx)
    event.workbench = copy.deepcopy(event.stored)
    return copy.deepcopy(event.stored)


def open_run(ctx, workbench):
    """The workbench's student run (the first run when it names none or a deleted one), moved
    to the newest revision; a colleague's newer save is told in ``workbench["message"]``.
    ``None`` when the dataset has no student run. Opened once per event."""
    event = _event(ctx)
    if workbench["run"] not in (event.run_keys or ()):  # listed again for a run made in this event
        event.run_keys = list_student_runs(ctx.dataset)
    keys, runs = event.run_keys, event.runs
    if not keys:
        return None
    if workbench["run"] not in keys:
        workbench.update(run=keys[0], revision=None, cls=None, split=None)
    if workbench["run"] not in runs:
        runs[workbench["run"]] = open_students(ctx.dataset, workbench["run"])
    run = runs[workbench["run"]]
    if workbench["revision"] is not None and workbench["revision"] != run.revision:
        newest = run.history[-1]
        workbench["message"] = (
            f"ℹ️ {newest.get('user') or 'Someone'} saved revision {run.revision} of '{run.key}' "
            f"at {entry_minute(newest['time'])} UTC: the panels now show it, your pending instructions are kept"
        )
        workbench["message_by"] = None
    workbench["revision"] = run.revision
    if workbench["cls"] not in run.classes:
        worst = run.performance(run.splits[0], sort_by="ap_gap")["classes"][0]["class"]
        workbench["cls"] = worst
    if workbench["split"] not in run.splits:
        workbench["split"] = run.splits[0]
    if workbench["concept"] not in run.concepts:
        workbench["concept"] = run.top_concepts(workbench["cls"], 1, sign="absolute")[0][0]
    known = set(run.concepts)
    workbench["focus"] = [name for name in workbench["focus"] if name in known]
    return run
