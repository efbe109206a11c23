"""The concept map: every corpus concept as a point, the selected class's student at a glance.

Points are the concepts' text embeddings projected to 2-D (PCA, t-SNE or UMAP, computed once per
corpus and cached), coloured by their weight for the selected class; its ten most influential
concepts are labelled, up- and down-tuned ones marked. **Box or lasso** a group of concepts and
the knowledge panel ranks only those; **click** a concept to open its detail. The search box
finds concepts by name and by meaning, and adds one the corpus lacks (no image is encoded again).
"""

import functools

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np

from fiftyone_inficond.new_concepts import add_concepts, search_concepts
from fiftyone_inficond.projection import METHODS, concept_projection, is_projected
from fiftyone_inficond.students.registry import extend_students

from ..operators.ui import THUMBS, dropdown, pct
from .base import WorkbenchPanel, answers, select_concept
from .workarounds import draw_text, set_chart
from .workbench import EMBEDDING, open_run, read_workbench

N_LABELLED = 10
N_FOUND = 8
MAP_PX = 440  # the map's height: most of it above the grid on a 1280x800 laptop
TUNED = {"up": ("triangle-up", "#1e88e5"), "down": ("triangle-down", "#fb8c00")}


class EmbeddingPanel(WorkbenchPanel):
    shows = frozenset({"run", "revision", "cls", "concept", "focus", "method", "search"})

    @property
    def config(self):
        return foo.PanelConfig(
            name=EMBEDDING,
            label="Concept map",
            icon="scatter_plot",
            help_markdown=(
                "Every concept of the corpus, placed by meaning and coloured by its weight for the selected "
                "class (blue supports it, red speaks against it). **Drag a box or a lasso** to show only "
                "those concepts in the knowledge panel; **click** a concept to see its detail."
            ),
        )

    @answers
    def on_change_method(self, ctx):
        """A projection kept already is shown at once; one to compute is said first (the App draws
        an answer only when the event ends: the old map stood for up to a minute, unexplained), then
        computed by :meth:`on_change_method_now`, which the App runs as soon as it drew this."""
        method = ctx.params["value"]
        field = open_run(ctx, read_workbench(ctx)).config["concepts_field"]
        if method not in METHODS or is_projected(ctx.dataset, field, method):
            return self.choose(ctx, "method", list(METHODS))
        ctx.panel.state.message = (f"⏳ Projecting the concepts of '{field}' with {METHODS[method]}: the map follows "
                                   "when it is computed (once for this corpus, then kept for everyone)")
        ctx.trigger(self.uri, {"__method__": "on_change_method_now", "panel_id": ctx.panel_id,
                               "panel_state": ctx.panel_state, "value": method})

    @answers
    def on_change_method_now(self, ctx):
        self.choose(ctx, "method", list(METHODS))

    @answers
    def on_select_chart(self, ctx):
        names = list(dict.fromkeys(_concepts_of(ctx.params.get("data") or [])))
        if not names:
            return
        self.change(ctx, siblings=True, focus=names,
                    message=f"Knowledge panel: only the {len(names)} concept{'s' if len(names) != 1 else ''} "
                            "you selected")

    @answers
    def on_click_chart(self, ctx):
        names = _concepts_of([ctx.params])
        if names:
            select_concept(self, ctx, names[0])

    @answers
    def on_clear_focus(self, ctx):
        self.change(ctx, siblings=True, focus=[], message="Knowledge panel: every concept again")

    @answers
    def on_search(self, ctx):
        self.change(ctx, search=" ".join(str(ctx.params.get("value") or "").split()), message=None)

    @answers
    def on_pick_found(self, ctx):
        select_concept(self, ctx, ctx.params["value"])

    @answers
    def on_add(self, ctx):
        workbench = read_workbench(ctx)
        field = open_run(ctx, workbench).config["concepts_field"]
        added = add_concepts(ctx.dataset, [workbench["search"]], field)
        self.change(ctx, message=(
            f"✅ Added '{added['added'][0]}' to '{field}' (concept {added['concepts']:,}, {added['samples']:,} "
            f"samples): find it on the map and show it in the grid; train the students again to let them use it"
        ))

    @answers
    def on_extend(self, ctx):
        workbench = read_workbench(ctx)
        run = open_run(ctx, workbench)
        extended = extend_students(ctx.dataset, run.key, user=ctx.user_id)
        before, after = (run.performance(workbench["split"])["summary"],
                         extended.performance(workbench["split"])["summary"])
        added = extended.history[0]["extends"]["added"]
        self.change(ctx, siblings=True, run=extended.key, revision=None, message=(
            f"✅ Student run '{extended.key}' trained with {len(added)} added "
            f"concept{'s' if len(added) != 1 else ''} "
            f"({', '.join(added)}), every 👍/👎 of '{run.key}' revision {run.revision} kept · mean student AP "
            f"{pct(before['student_ap'])} → {pct(after['student_ap'])} · '{run.key}' is unchanged "
            "(Student run dropdown)"
        ))

    def fill(self, ctx, workbench, run):
        cls, field = workbench["cls"], run.config["concepts_field"]
        projection = concept_projection(ctx.dataset, field, workbench["method"])
        found = _search(ctx.dataset.name, field, workbench["search"], tuple(projection["concepts"]),
                        projection["text_model"])
        ctx.panel.state.set({
            "ready": True,
            "controls": {"method": workbench["method"], "search": workbench["search"]},
            "header": (
                f"**{len(projection['concepts']):,} concepts** of '{field}' by {METHODS[workbench['method']]} · "
                f"colour: weight for **{cls}** · labelled: its {N_LABELLED} most influential · "
                f"{THUMBS['up']} ▲ up-tuned, {THUMBS['down']} ▼ down-tuned"
                + (" · green rings: found by the search" if found["choices"] else "")
            ),
            "message": self.message(workbench),
            "found": found["choices"],
            "found_note": found["text"],
            "can_add": found["can_add"],
            "focus": _focus_text(workbench["focus"]),
            "n_added": len(projection["concepts"]) - len(run.concepts),  # added since the run was trained
            "run": run.key,
        })
        set_chart(ctx, "chart", _traces(projection, run, cls, workbench, list(found["choices"])))

    def draw(self, panel, state, charts):
        controls = panel.h_stack("controls", align_x="left", gap=2)
        controls.enum("method", list(METHODS), label="Projection", view=dropdown(METHODS),
                      on_change=self.on_change_method)
        controls.str("search", label="Find a concept (name or meaning)", on_change=self.on_search)
        draw_text(panel, state, "header")
        if state.found_note:
            found = panel.h_stack("found_row", align_x="left", align_y="center", gap=2)
            draw_text(found, state, "found_note")
            if state.found:
                found.enum("found", list(state.found), label="Open the detail of", view=dropdown(
                    state.found, placeholder="a concept found"), on_change=self.on_pick_found)
            if state.can_add:
                found.btn("add", label=f"Add '{state.controls['search']}' as a concept", variant="outlined",
                          on_click=self.on_add)
        if state.message:
            draw_text(panel, state, "message")
        if state.n_added:
            panel.btn("extend", label=f"Train '{state.run}' again with the {state.n_added} added concept"
                      f"{'s' if state.n_added != 1 else ''}", variant="contained", on_click=self.on_extend)
        if state.focus:
            focus = panel.h_stack("focus_row", align_x="left", align_y="center", gap=2)
            draw_text(focus, state, "focus")
            focus.btn("clear_focus", label="Show every concept", variant="outlined", on_click=self.on_clear_focus)
        panel.plot(
            "chart",
            data=charts["chart"],
            layout=_layout(),
            config={"displayModeBar": True, "responsive": True, "displaylogo": False,
                    "modeBarButtonsToRemove": ["toImage", "autoScale2d"]},
            on_click=self.on_click_chart,
            on_selected=self.on_select_chart,
            height=MAP_PX,
        )


def _concepts_of(points):
    return [p["id"].split("|", 1)[1] for p in points if str(p.get("id", "")).startswith("concept|")]


@functools.lru_cache(maxsize=64)
def _search(dataset_name, field, phrase, names, text_model):
    """Concepts matching a typed phrase: by name first, then by meaning (nearest text embeddings).
    Kept per dataset, concept run, phrase, concept names (an added concept makes new names) and
    text model (a concept run recomputed with another model keeps its names, not their meaning):
    the map fills again on every refresh, a sibling panel's included, and would encode the phrase
    each time."""
    if not phrase:
        return {"choices": {}, "text": "", "can_add": False}
    folded = phrase.casefold()
    by_name = [name for name in names if folded in name.casefold()]
    by_meaning = [hit["concept"] for hit in search_concepts(fo.load_dataset(dataset_name), phrase, N_FOUND, field)]
    found = list(dict.fromkeys(by_name + by_meaning))[:N_FOUND]
    exact = any(name.casefold() == folded for name in names)
    text = (f"**'{phrase}'**: {len(by_name)} by name, nearest by meaning: " + ", ".join(by_meaning[:5])
            + ("" if exact else f" · '{phrase}' is not a concept yet"))
    return {"choices": {name: name for name in found}, "text": text, "can_add": not exact}


def _focus_text(focus):
    shown = ", ".join(focus[:12]) + (f" and {len(focus) - 12} more" if len(focus) > 12 else "")
    return f"**Knowledge panel shows only {len(focus)}:** {shown}" if focus else ""


def _traces(projection, run, cls, workbench, found):
    """All concepts coloured by weight (concepts the student lacks in grey), the class's most
    influential ones and those the search ``found`` labelled, tuned ones marked, the selection and
    the detail's concept ringed. The same traces in the same order every time, empty ones too: the
    App's chart keeps a trace's look by its place, and a trace that came and went gave old
    concepts the look of added ones."""
    names, points = projection["concepts"], projection["points"]
    where = {name: i for i, name in enumerate(names)}
    row = run.weight[run.classes.index(cls)]
    weights = {name: float(row[j]) for j, name in enumerate(run.concepts)}
    largest = max((abs(w) for w in weights.values()), default=0) or 1
    known = [name for name in names if name in weights]
    traces = [_points(
        "concepts", known, points, where,
        marker={"size": 8, "color": [weights[n] for n in known], "colorscale": "RdBu", "reversescale": True,
                "cmin": -largest, "cmax": largest,
                "colorbar": {"title": {"text": "weight"}, "thickness": 10, "len": 0.6}},
        customdata=[weights[n] for n in known], hover="%{text}: weight %{customdata:.3f}<extra></extra>",
    )]
    new = [name for name in names if name not in weights]
    traces.append(_points("not in the student", new, points, where, marker={"size": 8, "color": "#bdbdbd"},
                          hover="%{text}: added after the student was trained<extra></extra>"))
    top = [name for name, _ in run.top_concepts(cls, N_LABELLED, sign="absolute")]
    traces.append({**_points("most influential", top, points, where,
                             marker={"size": 11, "color": "rgba(0,0,0,0)", "line": {"width": 1.5, "color": "#212121"}},
                             hover="%{text}<extra></extra>"),
                   "mode": "markers+text", "textposition": "top center", "textfont": {"size": 11}})
    traces.append({**_points("found", [n for n in found if n in where], points, where,
                             marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": "#2e7d32"}},
                             hover="%{text}: found by the search<extra></extra>"),
                   "mode": "markers+text", "textposition": "bottom center",
                   "textfont": {"size": 12, "color": "#1b5e20"}})
    for direction, tuned in run.tuned(cls).items():
        symbol, colour = TUNED[direction]
        traces.append(_points(f"{direction}-tuned", tuned, points, where,
                              marker={"symbol": symbol, "size": 13, "color": colour},
                              hover=f"%{{text}}: {direction}-tuned for {cls}<extra></extra>"))
    traces.append(_points("selected", [n for n in workbench["focus"] if n in where], points, where,
                          marker={"size": 15, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#7b1fa2"}},
                          hover="%{text}: selected<extra></extra>"))
    traces.append(_points("detail", [workbench["concept"]], points, where,
                          marker={"symbol": "star", "size": 16, "color": "#ffb300",
                                  "line": {"width": 1, "color": "#000"}},
                          hover="%{text}: in the concept detail<extra></extra>"))
    return traces


def _points(name, concepts, points, where, marker, hover, customdata=None):
    rows = np.array([where[n] for n in concepts], dtype=int)
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": points[rows, 0].round(4).tolist() if len(rows) else [],
        "y": points[rows, 1].round(4).tolist() if len(rows) else [],
        "text": list(concepts),
        "ids": [f"concept|{n}" for n in concepts],
        "marker": marker,
        "hovertemplate": hover,
        **({} if customdata is None else {"customdata": customdata}),
    }


def _layout():
    axis = {"visible": False, "range": [-1.1, 1.1]}
    return {
        "height": MAP_PX,
        "margin": {"l": 5, "r": 5, "t": 10, "b": 5},
        "showlegend": False,
        "hovermode": "closest",
        "dragmode": "lasso",
        "xaxis": axis,
        "yaxis": {**axis, "scaleanchor": "x"},
        "plot_bgcolor": "#fafafa",
    }
