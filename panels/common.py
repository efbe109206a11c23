"""What the InFiConD panels share.

**One workbench per person**, in FiftyOne's execution store (MongoDB): the student run, class and
split on screen, the pending 👍/👎 and the tuning settings. Every panel reads it, so selecting a
class in one panel moves the others, and a reload or a restarted App loses nothing the user chose
or typed. Runs are shared; workbenches are not. Where FiftyOne knows users, the person is theirs;
open-source FiftyOne calls everyone "local", and each colleague runs their own App on the shared
database, so there the person is the OS user and machine running the App server, the name the run
history records a save under ("alice saved revision 3"). Browsers of one App mirror one session
(FiftyOne shares its view, tabs and panel state among them): one seat, one workbench. Panel state
is only what the panel shows now.

**Siblings are refreshed** in the same request: for each other InFiConD panel open in the App's
spaces, its ``show`` runs in a context addressed to its panel id, so the App receives its new
state, data and layout with the acting panel's (the App does not run a panel method triggered
from another panel).

**Text is drawn from the layout**: a markdown view is named apart from the state key it shows
(``header_text`` shows ``state.header``), so the App draws the text the render sent. The App
applies a sibling's layout and data but not always its state patch (seen in the browser after
a lasso), and a markdown view named like a state key shows the App's copy of that key.

**Charts travel in the layout** (a plot view's ``data``), not as panel data: the App merges a
panel's state and data into new objects at each of its renders (each state change, each round
trip of the workspace: a dozen per click), and plotly redraws a chart whose data is a new object,
so a chart sent with ``set_data`` was drawn 24-30 times per class change (plotly's ``afterplot``
events, counted in the browser); in the layout it keeps its identity until the next answer and
is drawn once. The traces stay in the App server's memory (:class:`_Charts`) for the answers
that do not compute them again.

**Errors are one sentence**: a library refusal (:class:`InficondError`) is shown as it is, in
the user's words; anything else says the server failed, keeps the workbench as it was and names
the file holding the traceback (:data:`ERROR_LOG`, also in the App server's output).
"""

import base64
import collections
import contextlib
import copy
import functools
import io
import json
import logging
import os
import socket
import sys
import threading
import time

import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone.operators import get_operator
from fiftyone.operators.executor import ExecutionContext

from fiftyone_inficond.errors import InficondError, UnknownName
from fiftyone_inficond.fiftyone_api import sharing_dataset
from fiftyone_inficond.students.evaluation import SPLITS, entry_metrics
from fiftyone_inficond.students.registry import list_student_runs, open_students
from fiftyone_inficond.students.run import DEFAULT_TUNING_EPOCHS
from fiftyone_inficond.students.store import current_user

from ..operators.ui import PLUGIN, entry_minute

logger = logging.getLogger(__name__)
# where a failed panel event's traceback goes, besides the App server's output
ERROR_LOG = os.environ.get("INFICOND_ERROR_LOG") or os.path.join(os.path.expanduser("~"), ".fiftyone", "inficond.log")

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
CHART_CONFIG = {"displayModeBar": False, "responsive": True}  # a chart without plotly's toolbar
COLOURS = {"up": "🟦", "down": "🟧"}  # the paper's blue up, orange down
THUMBS = {"up": "👍", "down": "👎"}


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
    while True:
        value = {**DEFAULTS, **(event.raw or {}), **copy.deepcopy(changed)}
        if (store.set_if_absent(event.key, value) if event.raw is None
                else store.compare_and_set(event.key, event.raw, value)):
            break
        event.raw = store.get(event.key)  # saved meanwhile by another event
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


def answers(method):
    """Runs a panel event, then writes its workbench (once); a refusal or failure becomes the
    workbench message (one sentence) and an App notification, and the panel still renders."""

    @functools.wraps(method)
    def handler(self, ctx):
        try:
            return method(self, ctx)
        except InficondError as error:
            _tell(ctx, self, f"⚠️ {error}")
        except Exception:  # the user gets a sentence, the error log the traceback
            _log_failure(f"{type(self).__name__}.{method.__name__}")
            _tell(ctx, self, f"⚠️ The server could not do this; nothing was changed (the details are in "
                             f"{ERROR_LOG})")
        finally:
            save_workbench(ctx)

    return handler


class _Twins:
    """The App sends a box's change twice at the same moment (a pick in a class list, a keystroke:
    the same method, params and panel state, a millisecond apart). Run and drawn twice, the pick
    cost about 0.3 s more on 2 cores. So the twin of an event answered less than :attr:`WITHIN`
    seconds ago, finding the workbench as that event found or left it, is not run and its answer
    is empty: the App has drawn the first's. Twins wait for each other; other events do not."""

    WITHIN = 1.0

    def __init__(self):
        self._guard = threading.Lock()
        self._locks = {}  # event -> its lock
        self._answered = {}  # event -> (monotonic time, workbenches it found and left)

    @contextlib.contextmanager
    def once(self, ctx):
        """Yields True for an event to run, False for a twin. Only a box's change (its params carry
        the ``value``) can have a twin: a click or a timer is sent once, and one repeated, say
        Fine-tune pressed again after a colleague's save was told, must run again."""
        if "value" not in ctx.params:
            yield True
            return
        event = json.dumps([workbench_key(ctx), ctx.request_params.get("dataset_name"), ctx.params],
                           sort_keys=True, default=str)  # the method, the panel's id and state among the params
        with self._guard:
            now = time.monotonic()
            for old in [e for e, (at, _) in self._answered.items() if now - at > self.WITHIN]:
                del self._answered[old]
                self._locks.pop(old, None)
            lock = self._locks.setdefault(event, threading.Lock())
        with lock:
            found = fingerprint(_event(ctx).stored)
            answered = self._answered.get(event)
            if answered is not None and time.monotonic() - answered[0] <= self.WITHIN and found in answered[1]:
                yield False
                return
            try:
                yield True
            finally:
                left = fingerprint(_event(ctx).stored)  # as saved at the event's end
                self._answered[event] = (time.monotonic(), {found, left})


_TWINS = _Twins()


class _Charts:
    """The traces of each panel's charts as last computed, in this server's memory by panel id:
    drawn in the layout of every answer of the panel (see the module's docstring), computed again
    only when what the panel shows changed. The panels of the last :attr:`SIZE` ids are kept."""

    SIZE = 64

    def __init__(self):
        self._guard = threading.Lock()
        self._by_panel = collections.OrderedDict()  # panel id -> {chart name: traces}

    def start(self, panel_id):
        """The panel is being shown anew: its charts are those set from now on."""
        with self._guard:
            self._by_panel[panel_id] = {}
            self._by_panel.move_to_end(panel_id)
            while len(self._by_panel) > self.SIZE:
                self._by_panel.popitem(last=False)

    def set(self, panel_id, name, traces):
        with self._guard:
            self._by_panel.setdefault(panel_id, {})[name] = traces

    def get(self, panel_id):
        """The panel's charts by name, or ``None`` when this server has not shown the panel."""
        with self._guard:
            charts = self._by_panel.get(panel_id)
            return None if charts is None else dict(charts)


_CHARTS = _Charts()


def set_chart(ctx, name, traces):
    """``traces`` as the data of this panel's chart ``name`` (its plot view), until it is shown anew."""
    _CHARTS.set(ctx.panel_id, name, traces)


def _log_failure(event):
    """The traceback of the exception being handled, in the server's output and in :data:`ERROR_LOG`."""
    logger.exception("InFiConD panel event %s failed", event)
    try:
        os.makedirs(os.path.dirname(ERROR_LOG), exist_ok=True)
        handler = logging.FileHandler(ERROR_LOG, encoding="utf-8")
    except OSError:  # an unwritable home: the server's output still has it
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "InFiConD panel event %s failed",
                               (event,), exc_info=sys.exc_info())
    handler.handle(record)
    handler.close()


def _tell(ctx, panel, message):
    """The workbench as the event found it, with ``message``."""
    event = _event(ctx)
    event.workbench = {**copy.deepcopy(event.stored), "message": message, "message_by": panel.config.name}
    ctx.ops.notify(message.removeprefix("⚠️ "), variant="error")
    try:
        panel.show(ctx)
    except Exception:  # e.g. the run itself cannot be read: the panel shows only the sentence
        ctx.panel.state.set({"ready": False, "message": message})


class WorkbenchPanel(foo.Panel):
    """A panel that shows the workbench: ``fill`` sets its state and data from the workbench and
    the run, ``draw`` lays them out; an event changes the workbench and shows it again."""

    def execute(self, ctx):
        """FiftyOne's, but an event with nothing to show answers nothing, not even the layout (which
        the App would draw again): the twin of an event (see :class:`_Twins`), and a tab opened again
        on what it still shows (see :meth:`on_shown`)."""
        with _TWINS.once(ctx) as first:
            if not first or (ctx.params.get("__method__") == "on_shown" and self._still_shown(ctx)):
                return None
            return super().execute(ctx)

    @answers
    def on_load(self, ctx):
        self.show(ctx)

    @answers
    def on_shown(self, ctx):
        """The panel's view was mounted again (its tab opened) and the workbench changed meanwhile
        (else :meth:`execute` answers nothing): shown again. The App runs ``on_load`` once per page,
        and a panel in a hidden tab is not refreshed with the shown ones, so it would show what it
        showed when it was last open."""
        self.show(ctx)

    @staticmethod
    def _still_shown(ctx):
        """Whether the panel shows the workbench as stored, and this server still has its charts."""
        try:
            same = ctx.panel.state.get("shown") == fingerprint(read_workbench(ctx))
        except Exception:  # the store unreadable: on_shown says so in a sentence
            return False
        return same and _CHARTS.get(ctx.panel_id) is not None

    @answers
    def on_change_cls(self, ctx):
        """A class picked in this panel's class control: every panel shows it."""
        self.change(ctx, siblings=True, cls=ctx.params["value"], message=None)

    def show(self, ctx):
        workbench = read_workbench(ctx)
        run = open_run(ctx, workbench)
        write_workbench(ctx, workbench)
        _CHARTS.start(ctx.panel_id)
        if run is None:
            ctx.panel.state.set({"ready": False, "message": None})
        else:
            self.fill(ctx, workbench, run)
        ctx.panel.state.shown = fingerprint(workbench)

    def render(self, ctx):
        panel = types.Object()
        state = ctx.panel.state
        if not state.get("ready"):
            return not_ready(panel, state)
        charts = _CHARTS.get(ctx.panel_id)
        if charts is None:  # shown by another server process, or before a restart: computed again
            self.show(ctx)
            charts = _CHARTS.get(ctx.panel_id)
        self.draw(panel, state, charts)
        panel.view("on_shown_timer", types.TimerView(timeout=100, on_timeout=self.on_shown))
        return types.Property(panel, view=types.GridView(orientation="vertical", align_x="left"))

    def change(self, ctx, siblings=False, **changes):
        """Changes the workbench and shows it here (and in the other panels with ``siblings``)."""
        workbench = read_workbench(ctx)
        workbench.update(changes)
        if "message" in changes:
            workbench["message_by"] = self.config.name
        self.publish(ctx, workbench, siblings)

    def says(self, message):
        """The workbench keys of ``message`` answered by this panel (for ``workbench.update``)."""
        return {"message": message, "message_by": self.config.name}

    def message(self, workbench):
        """The workbench's message if it is this panel's to show: its own answer, or one for every panel."""
        return (workbench["message"] or "") if workbench["message_by"] in (None, self.config.name) else ""

    def publish(self, ctx, workbench, siblings=True):
        write_workbench(ctx, workbench)
        self.show(ctx)
        if siblings:
            refresh_siblings(ctx)

    def run_to_save_on(self, ctx, workbench):
        """The run at the revision the user last saw, or ``None`` when someone saved since: then
        the panels show that revision (who, when) and the workbench keeps what the user chose."""
        seen = workbench["revision"]
        run = open_run(ctx, workbench)
        if run is None:
            raise UnknownName("This dataset has no student run any more: train one, then try again")
        if run.revision == seen:
            return run
        self.publish(ctx, workbench)
        return None

    shows = frozenset()  # the workbench keys the panel shows: a sibling redraws when one changed

    def fill(self, ctx, workbench, run):
        """Sets the panel's state (:attr:`ctx.panel.state`) and charts (:func:`set_chart`)."""
        raise NotImplementedError

    def draw(self, panel, state, charts):
        """Lays out ``state``; ``charts`` holds the traces of each chart ``fill`` set, by name."""
        raise NotImplementedError


class TuningPanel(WorkbenchPanel):
    """A panel with the pending line and Fine-tune: its press answers at once with what is being
    tuned (:func:`start_fine_tune`), then the tuning runs (:func:`fine_tune`)."""

    @answers
    def on_fine_tune(self, ctx):
        start_fine_tune(self, ctx)

    @answers
    def on_fine_tune_now(self, ctx):
        fine_tune(self, ctx)


def select_concept(panel, ctx, concept):
    """Shows ``concept`` in the concept detail panel (its tab activated, or opened as a tab when it
    is closed) and says so."""
    panel.change(ctx, siblings=True, concept=concept, message=f"'{concept}' is open in Concept detail")
    ctx.ops.open_panel(DETAIL, is_active=True)  # its tab, or a new tab of the first space: never a new split


def choices(names, width=180):
    """An autocomplete of ``names``, ``width`` pixels wide at least (in a row it shrinks to "bi…").
    Only a listed name is sent: a box open to any text also sent what was typed, keystroke by
    keystroke, as a name."""
    return types.AutocompleteView(choices=[types.Choice(name, label=name) for name in names], allow_user_input=False,
                                  componentsProps={"autocomplete": {"sx": {"minWidth": width}}})


def refresh_siblings(ctx):
    """Shows the workbench again in the other InFiConD panels the App shows that show what this
    event changed (the same workbench and run: nothing is read again)."""
    spaces = ctx.spaces
    changed = _event(ctx).changed()
    if spaces is None or not changed:
        return
    for child in _shown_panels(spaces):
        if child.type in PANELS and child.component_id != ctx.panel_id:
            panel = get_operator(f"{PLUGIN}/{child.type}")  # registered: its event URIs name the plugin
            if not panel.shows & changed:
                continue
            sibling = sharing_dataset(ExecutionContext(
                request_params={**ctx.request_params, "params": {"panel_id": child.component_id, "panel_state": {}}},
                executor=ctx.executor,
            ), ctx.dataset)
            sibling._inficond_event = _event(ctx)
            panel.show(sibling)
            sibling.ops.show_panel_output(panel.render(sibling))


def _shown_panels(space):
    """The panels the App shows now: the active tab of each space. A panel in a hidden tab shows
    the workbench when its tab is opened (``on_load``); a patch for it would stop the App from
    applying the requests that follow it in the same answer (seen in the browser)."""
    for child in space.children or []:
        if hasattr(child, "children"):
            yield from _shown_panels(child)
        elif child.component_id == space.active_child:
            yield child


def draw_text(panel, state, key):
    """Draws ``state[key]`` as markdown in a view named ``<key>_text``, apart from the state key
    on purpose: the App applies a sibling panel's layout but not always its state patch, and a
    markdown view named like a state key would show the App's copy of that key, possibly stale."""
    panel.md(state.get(key), name=f"{key}_text")


def image_uri(image, quality=80):
    """A PIL image as a ``data:`` URI (plotly's layout images take them)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pct(value):
    return "–" if value is None else f"{100 * value:.1f}"


def signed_pct(value):
    return "–" if value is None else f"{100 * value:+.2f}"


def not_ready(panel, state):
    """What a panel shows without a run to show: why, and what to do."""
    panel.md(
        state.get("message") or "No student run on this dataset yet. Run **InFiConD: train students** "
        "(press `` ` `` and type *train students*), then open this panel again.",
        name="empty",
    )
    return types.Property(panel)


# --- pending 👍/👎 and Fine-tune (the knowledge and concept panels) ------------------------


def usage_text(run, cls):
    """"its student uses 14 of 1,153 concepts (budget 16)": how much of the corpus decides a class."""
    budget = run.budget_of(cls)
    limit = "" if budget is None else f" (budget {budget})"
    return f"its student uses {len(run.uses(cls))} of {len(run.concepts):,} concepts{limit}"


def toggle_pending(workbench, concept, direction):
    """The pending instructions with ``direction`` on ``concept`` for the workbench's class added,
    or removed when it was there (one instruction per class and concept: the newest wins)."""
    item = {"class": workbench["cls"], "concept": concept, "direction": direction}
    others = [p for p in workbench["pending"] if (p["class"], p["concept"]) != (item["class"], concept)]
    return others if item in workbench["pending"] else others + [item]


def pending_text(workbench, run):
    pending = workbench["pending"]
    if not pending:
        return "No pending instructions: click 👍 or 👎 beside a concept."
    blocks = " ".join(
        f"{COLOURS[p['direction']]} {THUMBS[p['direction']]} *{p['concept']}*{_synonyms(run, p['concept'])} "
        f"for {p['class']}" for p in pending
    )
    return f"**Pending** {blocks} · factor {workbench['factor']}, {workbench['epochs']} epochs"


def _synonyms(run, concept):
    """`` (+ clouds)``: the synonyms a 👍/👎 on ``concept`` also tunes."""
    others = run.synonyms_of(concept) if concept in run.concepts else []
    return f" (+ {', '.join(others)})" if others else ""


def start_fine_tune(panel, ctx):
    """Fine-tune's first answer, drawn at once: what is being tuned, the buttons off. The tuning
    itself is the panel's ``on_fine_tune_now``, which the App runs as soon as it has drawn this
    (a panel event answers once, at its end: without this the user saw nothing for seconds)."""
    workbench = read_workbench(ctx)
    if _nothing_pending(panel, ctx, workbench):
        return
    settings = tuning_settings(ctx, workbench)
    classes = sorted({item["class"] for item in workbench["pending"]})
    count = len(workbench["pending"])
    ctx.panel.state.set({"has_pending": False, "message": (
        f"⏳ Fine-tuning {', '.join(classes)}: {count} instruction{'s' if count != 1 else ''}, "
        f"{settings['epochs']} epochs; the answer follows in a few seconds")})
    # the method in the params: the App looks up a triggered URI as it is, "#method" and all
    ctx.trigger(panel.uri, {"__method__": "on_fine_tune_now", "panel_id": ctx.panel_id, "panel_state": ctx.panel_state})


def _nothing_pending(panel, ctx, workbench):
    """True, and the user told so, when there is nothing to fine-tune (pressed with nothing
    pending, or cleared in the App's other browser meanwhile)."""
    if workbench["pending"]:
        return False
    panel.change(ctx, message="Nothing to fine-tune: 👍 or 👎 a concept first")
    return True


def fine_tune(panel, ctx):
    """Applies every pending instruction in one tuning iteration and says what it changed."""
    workbench = read_workbench(ctx)
    if _nothing_pending(panel, ctx, workbench):
        return
    run = panel.run_to_save_on(ctx, workbench)
    if run is None:
        return
    settings = tuning_settings(ctx, workbench)
    entry = run.tune(instructions=workbench["pending"], **settings, user=ctx.user_id)
    workbench.update(pending=[], note="", revision=entry["revision"], **panel.says(_tuned_message(entry, workbench["split"])))
    panel.publish(ctx, workbench)


TYPED = ("factor", "epochs", "note")  # the boxes beside Fine-tune
NOTE_HINT = "why, e.g. removed the cloud shortcut"  # a note box's placeholder


def note_box(revision):
    """The note box's name: a new box for each revision, so it starts empty after a fine-tune (the
    App's text box keeps what was typed in it whatever the state says)."""
    return f"note_{revision}"


def tuning_boxes(workbench, revision):
    """The tuning row's state: what its boxes show."""
    return {"factor": workbench["factor"], "epochs": workbench["epochs"], note_box(revision): workbench["note"]}


def tuning_settings(ctx, workbench):
    """The tuning factor, epochs and note a fine-tune uses: as the acting panel's boxes hold them
    now (the App sends its panel state with every event), else the workbench's. What the user
    sees is what a fine-tune uses, whichever of the typing's intermediate values reached the
    workbench last."""
    state = ctx.panel.state
    typed = dict(state.get("tuning") or {})
    typed["note"] = typed.get(note_box(state.get("revision")))
    return {name: workbench[name] if typed.get(name) is None else typed[name] for name in TYPED}


def _tuned_message(entry, split):
    """What a fine-tune changed on ``split``, in the figures its history entry keeps (those
    provenance shows)."""
    metrics = entry_metrics(entry, split)
    changes = [
        f"{cls}: student AP {pct(rows['before']['student_ap'])} → {pct(rows['after']['student_ap'])} "
        f"({_points(rows['before']['student_ap'], rows['after']['student_ap'])}), F1 vs teacher "
        f"{pct(rows['before']['f1'])} → {pct(rows['after']['f1'])}"
        for cls, rows in metrics["classes"].items()
    ]
    mean = _points(metrics["before"]["student_ap"], metrics["after"]["student_ap"])
    note = f" “{entry['note']}”" if entry.get("note") else ""
    return (f"✅ Revision {entry['revision']} saved{note} ({SPLITS[split]}) · " + "; ".join(changes)
            + f" · mean student AP {mean}  \n" + weights_text(entry))


def weights_text(entry):
    """What the tuning did to the weights: each named concept's (with the synonyms it took
    along) and those that rose in its place, for the user to 👎 next if they stand in for it."""
    via = {}
    for item in entry["change"]:
        via.setdefault((item["class"], item.get("via", item["concept"])), []).append(item)
    tuned = []
    for (cls, named), items in via.items():
        items.sort(key=lambda item: item["concept"] != named)
        also = [item["concept"] for item in items[1:]]
        weights = ", ".join(f"{item['weight_before']:.3f} → {item['weight_after']:.3f}" for item in items)
        tuned.append(f"{THUMBS[items[0]['direction']]} *{named}*" + (f" (+ {', '.join(also)})" if also else "")
                     + f" for {cls}: {weights}")
    rose = [
        f"for {cls}: " + ", ".join(f"*{r['concept']}* {r['weight_after'] - r['weight_before']:+.3f}" for r in rows)
        for cls, rows in (entry.get("rose") or {}).items() if rows
    ]
    return "; ".join(tuned) + (f" · rose in their place {'; '.join(rose)}" if rose else "")


def _points(before, after):
    if before is None or after is None:
        return "–"
    return f"{signed_pct(after - before)} pts"
