"""Workarounds for the App's behaviour, each with the FiftyOne behaviour it works around (seen with
FiftyOne 1.22), so that each can go when FiftyOne changes.

**Twins** (:class:`_Twins`): the App sends a box's change twice at the same moment; the twin is
not run again.

**Siblings are refreshed** in the same request (:func:`refresh_siblings`): for each other InFiConD
panel open in the App's spaces, its ``show`` runs in a context addressed to its panel id, so the App
receives its new state, data and layout with the acting panel's (the App does not run a panel
method triggered from another panel).

**Text is drawn from the layout** (:func:`draw_text`): a markdown view is named apart from the state
key it shows (``header_text`` shows ``state.header``), so the App draws the text the render sent.
The App applies a sibling's layout and data but not always its state patch (seen in the browser
after a lasso), and a markdown view named like a state key shows the App's copy of that key.

**Charts travel in the layout** (:class:`_Charts`): a plot view's ``data``, not panel data: the App
merges a panel's state and data into new objects at each of its renders (each state change, each
round trip of the workspace: a dozen per click), and plotly redraws a chart whose data is a new
object, so a chart sent with ``set_data`` was drawn 24-30 times per class change (plotly's
``afterplot`` events, counted in the browser); in the layout it keeps its identity until the next
answer and is drawn once. The traces stay in the App server's memory for the answers that do not
compute them again.
"""

import collections
import contextlib
import json
import threading
import time

from fiftyone.operators import get_operator
from fiftyone.operators.executor import ExecutionContext

from fiftyone_inficond.fiftyone_api import sharing_dataset

from ..operators.ui import PLUGIN
from .workbench import PANELS, _event, fingerprint, workbench_key


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


def start_charts(panel_id):
    """The panel is being shown anew: its charts are those set from now on."""
    _CHARTS.start(panel_id)


def charts_of(panel_id):
    """The panel's charts by name, or ``None`` when this server has not shown the panel."""
    return _CHARTS.get(panel_id)


def set_chart(ctx, name, traces):
    """``traces`` as the data of this panel's chart ``name`` (its plot view), until it is shown anew."""
    _CHARTS.set(ctx.panel_id, name, traces)


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
