"""The InFiConD panels' base classes: a panel that shows the workbench (:class:`WorkbenchPanel`)
and one with Fine-tune (:class:`TuningPanel`), and how an event answers.

**Errors are one sentence**: a library refusal (:class:`InficondError`) is shown as it is, in
the user's words; anything else says the server failed, keeps the workbench as it was and names
the file holding the traceback (:data:`ERROR_LOG`, also in the App server's output). A message
belongs to the panel whose action it answers (``message_by``); a colleague's save is told in every
panel.
"""

import copy
import functools
import logging
import os
import sys

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.errors import InficondError, InvalidRequest, UnknownName

from .fine_tune import fine_tune, start_fine_tune
from .workarounds import _TWINS, charts_of, refresh_siblings, start_charts
from .workbench import DETAIL, _event, fingerprint, open_run, read_workbench, save_workbench, write_workbench

logger = logging.getLogger(__name__)


# where a failed panel event's traceback goes, besides the App server's output
ERROR_LOG = os.environ.get("INFICOND_ERROR_LOG") or os.path.join(os.path.expanduser("~"), ".fiftyone", "inficond.log")


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
        return same and charts_of(ctx.panel_id) is not None

    @answers
    def on_change_cls(self, ctx):
        """A class picked in this panel's class control: every panel shows it."""
        self.choose(ctx, "cls", lambda run: run.classes, siblings=True, message=None)

    def choose(self, ctx, key, choices, siblings=False, **also):
        """The dropdown ``key`` changed: its value goes into the workbench only if it is one of
        ``choices`` (a list, or a function of the run giving it), checked before the workbench is
        touched; a value sent by anything but the dropdown is refused in a sentence, and a cleared
        dropdown (``None``) just shows its choice again."""
        value = ctx.params.get("value")
        if value is None:
            self.show(ctx)
            return
        if callable(choices):
            run = open_run(ctx, read_workbench(ctx))
            choices = [] if run is None else choices(run)
        if isinstance(value, (list, dict)) or value not in choices:
            raise InvalidRequest(f"'{str(value)[:40]}' is not one of this list's choices: pick one from the list")
        self.change(ctx, siblings=siblings, **{key: value}, **also)

    def show(self, ctx):
        workbench = read_workbench(ctx)
        run = open_run(ctx, workbench)
        write_workbench(ctx, workbench)
        start_charts(ctx.panel_id)
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
        charts = charts_of(ctx.panel_id)
        if charts is None:  # shown by another server process, or before a restart: computed again
            self.show(ctx)
            charts = charts_of(ctx.panel_id)
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


def not_ready(panel, state):
    """What a panel shows without a run to show: why, and what to do."""
    panel.md(
        state.get("message") or "No student run on this dataset yet. Run **InFiConD: train students** "
        "(press `` ` `` and type *train students*), then open this panel again.",
        name="empty",
    )
    return types.Property(panel)
