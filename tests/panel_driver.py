"""A panel driven as the App drives it, without a browser (tests and benchmarks).

An event runs through FiftyOne's own execution machinery: an ``ExecutionContext`` with an
``Executor``, the panel's id and state in its params and the spaces in the request: by default
:func:`side_by_side`, a layout a user may arrange where several panels show at once (the demo's
own workspace shows one panel at a time, as tabs). What the App would receive for this panel
(state and data patches, and the charts its layout draws) is applied to ``state`` and ``data``;
every request is returned for assertions.
"""

import copy

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext, Executor

PLUGIN = "@inficond/inficond"


def side_by_side():
    """The grid; performance, concept map and provenance (tabs); knowledge and concept detail (tabs):
    performance and knowledge shown side by side, the first tab of each space."""
    columns = [["Samples"], ["inficond_performance", "inficond_embedding", "inficond_provenance"],
               ["inficond_knowledge", "inficond_concept"]]
    spaces = []
    for types in columns:
        panels = [fo.Panel(type=t) for t in types]
        spaces.append(fo.Space(children=panels, active_child=panels[0].component_id))
    return fo.Space(children=spaces, orientation="horizontal")


def _panels(space):
    for child in space.children or []:
        yield from _panels(child) if hasattr(child, "children") else [child]


class PanelDriver:
    """One panel of ``spaces``, with the state and data the App would hold."""

    def __init__(self, dataset, name, spaces=None):
        self.spaces = spaces or side_by_side()
        self.dataset, self.name, self.state, self.data = dataset, name, {}, {}
        self.id = next(p.component_id for p in _panels(self.spaces) if p.type == name)

    def event(self, method, app=None, **params):
        """Runs ``method`` with ``params``; ``app`` is what else the App sends (``{"selected": ids}``).
        A method of this panel that the answer triggers runs next, as the App runs it; the requests
        of both are returned."""
        return self._run(method, app, dict(self.state), params)

    def twins(self, method, **params):
        """Runs ``method`` twice with the same state, as the App sends some events (a pick in a class
        list): the requests of each answer."""
        sent = copy.deepcopy(self.state)
        return self._run(method, None, copy.deepcopy(sent), params), self._run(method, None, sent, params)

    def _run(self, method, app, panel_state, params):
        executor = Executor()
        request = {
            **(app or {}),
            "dataset_name": self.dataset.name,
            "spaces": self.spaces.to_dict(),
            "params": {"panel_id": self.id, "panel_state": panel_state, "__method__": method, **params},
        }
        foo.get_operator(self.uri).execute(ExecutionContext(request_params=request, executor=executor))
        requests = executor.to_json()["requests"]
        triggered = []
        for request in requests:
            uri, sent = request["operator_uri"], request["params"]
            if uri.endswith("patch_panel_state") and sent.get("panel_id") in (None, self.id):
                self.state.update(sent["state"])
            elif uri.endswith("patch_panel_data") and sent.get("panel_id") in (None, self.id):
                self.data.update(sent["data"])
            elif uri.endswith("show_panel_output") and sent.get("panel_id") in (None, self.id):
                self.data.update(charts(sent["output"]))
            elif uri == self.uri and sent.get("panel_id") == self.id:
                triggered.append(sent)
        for sent in triggered:  # with the params the trigger names, the panel state among them
            requests += self._run(sent["__method__"], app, sent.get("panel_state", {}),
                                  {k: v for k, v in sent.items() if k not in ("panel_id", "panel_state", "__method__")})
        return requests

    @property
    def uri(self):
        return f"{PLUGIN}/{self.name}"


def find(requests, suffix):
    """The params of the requests whose operator ends with ``suffix``."""
    return [r["params"] for r in requests if r["operator_uri"].endswith(suffix)]


def charts(output):
    """The traces of each chart a panel's layout (``show_panel_output``'s) draws, by the chart's name."""
    found = {}
    for name, prop in (output["type"].get("properties") or {}).items():
        view = prop.get("view") or {}
        if view.get("name") == "PlotlyView":
            found[name] = view["data"]
        else:
            found.update(charts(prop))
    return found


def ranked(chart):
    """The concepts of a knowledge chart's traces, in ranking order (its influence bars' ids)."""
    (influence,) = [t for t in chart if t["name"] == "influence"]
    return [i.removeprefix("concept|") for i in influence["ids"]]


def named(instructions, concept):
    """A history entry's instructions as the user named them: those its synonyms took along (each
    ``via`` ``concept``) left out, after checking that they came via it."""
    assert all(item["via"] == concept for item in instructions if "via" in item), instructions
    return [item for item in instructions if "via" not in item]
