"""Concept detail: one concept of the selected class, before deciding to 👍 or 👎 it.

Four what-if charts (accuracy, F1, recall and precision against the teacher as the concept's
weight varies, the current weight marked), the concept's presence among the teacher's predicted
positives and negatives, and **Show in grid**: the samples where the concept is most present, in the
native grid, each with the concept's heatmap (one reused label field) so the user sees *where*
it is. 👍/👎 here are the same pending instructions as the knowledge panel's.
"""

import fiftyone.operators as foo
import numpy as np

from fiftyone_inficond.students.evaluation import SPLITS

from ..operators.ui import THUMBS, groups_line, heatmap_legend, share_of, show_overlay
from .base import TuningPanel, answers
from .display import CHART_CONFIG, choices
from .fine_tune import has_pending, pending_text, toggle_pending
from .workarounds import draw_text, set_chart
from .workbench import DETAIL, open_run, read_workbench

METRICS = {"accuracy": "accuracy", "f1": "F1", "recall": "recall", "precision": "precision"}
BINS = 20


class ConceptPanel(TuningPanel):
    shows = frozenset({"run", "revision", "cls", "split", "concept", "pending"})

    @property
    def config(self):
        return foo.PanelConfig(
            name=DETAIL,
            label="Concept detail",
            icon="center_focus_strong",
            help_markdown=(
                "One concept of the selected class: how the student's agreement with the teacher would "
                "change with its weight (● is now), where it is present, and **Show in grid**: the images "
                "where it is most present, with its heatmap. 👍/👎 wait with the other pending instructions."
            ),
        )

    @answers
    def on_change_concept(self, ctx):
        self.choose(ctx, "concept", lambda run: run.concepts, siblings=True, message=None)

    @answers
    def on_up(self, ctx):
        self._toggle(ctx, "up")

    @answers
    def on_down(self, ctx):
        self._toggle(ctx, "down")

    @answers
    def on_show_in_grid(self, ctx):
        workbench = read_workbench(ctx)
        run = open_run(ctx, workbench)
        concept, split = workbench["concept"], workbench["split"]
        view = run.presence_view(concept, split)
        shown = show_overlay(ctx, view, concept, run.config["concepts_field"], set_view=True)
        self.change(ctx, message=(
            f"Grid: the {share_of(shown['samples'], run.split_size(split), split)} where '{concept}' is most "
            f"present, most first; {heatmap_legend(shown)} (field '{shown['field']}')"
        ))

    def _toggle(self, ctx, direction):
        workbench = read_workbench(ctx)
        self.change(ctx, siblings=True, pending=toggle_pending(workbench, workbench["concept"], direction),
                    message=None)

    def fill(self, ctx, workbench, run):
        cls, concept, split = workbench["cls"], workbench["concept"], workbench["split"]
        curves = run.what_if(cls, [concept], n_values=41)
        presence = run.presence(cls, concept, split)
        weight = curves["weights"][0]
        row = np.abs(run.weight[run.classes.index(cls)])
        rank = int((row > abs(weight)).sum()) + 1
        used = len(run.uses(cls))
        standing = (f"#{rank} of the {used} concepts its student uses" if weight
                    else f"not one of the {used} concepts its student uses: 👍 brings it in")
        pending = {p["direction"] for p in workbench["pending"] if (p["class"], p["concept"]) == (cls, concept)}
        ctx.panel.state.set({
            "ready": True,
            "classes": run.classes,
            "concepts": run.concepts,
            "controls": {"cls": cls, "concept": concept},
            "header": (
                f"**{concept}** for **{cls}** · weight {weight:+.3f} ({standing}) · "
                f"mean presence {_mean(presence['positives'])} among the teacher's {len(presence['positives'])} "
                f"predicted positives, {_mean(presence['negatives'])} among its {len(presence['negatives'])} "
                f"predicted negatives "
                f"({SPLITS[split]})"
                + (f"  \n{groups_line(run.worst_groups(cls, concept, split), concept)}"
                   if run.data.truth is not None else "")
            ),
            "pending_here": sorted(pending),
            "pending": pending_text(workbench, run),
            "has_pending": has_pending(workbench),
            "message": self.message(workbench),
        })
        set_chart(ctx, "whatif", _what_if_traces(curves, concept))
        set_chart(ctx, "presence", _presence_traces(presence))

    def draw(self, panel, state, charts):
        controls = panel.h_stack("controls", align_x="left", gap=2)
        controls.enum("cls", state.classes, label="Class", on_change=self.on_change_cls, view=choices(state.classes))
        controls.enum("concept", state.concepts, label="Concept", on_change=self.on_change_concept,
                      view=choices(state.concepts))
        draw_text(panel, state, "header")
        actions = panel.h_stack("actions", align_x="left", align_y="center", gap=2)
        for direction, handler in (("up", self.on_up), ("down", self.on_down)):
            chosen = direction in state.pending_here
            actions.btn(direction, label=f"{THUMBS[direction]} {'pending' if chosen else direction}",
                        variant="contained" if chosen else "outlined", on_click=handler)
        actions.btn("show_in_grid", label="Show in grid", variant="outlined", icon="grid_view",
                    on_click=self.on_show_in_grid)
        actions.btn("fine_tune", label="Fine-tune", variant="contained", disabled=not state.has_pending,
                    on_click=self.on_fine_tune)
        draw_text(panel, state, "pending")
        if state.message:
            draw_text(panel, state, "message")
        panel.plot("whatif", data=charts["whatif"], layout=_what_if_layout(), config=CHART_CONFIG, height=330)
        panel.plot("presence", data=charts["presence"], layout=_presence_layout(), config=CHART_CONFIG, height=220)


def _mean(presence):
    return f"{float(presence.mean()):.2f}" if len(presence) else "–"


def _what_if_traces(curves, concept):
    values, weight = curves["values"][0], curves["weights"][0]
    now = int(np.argmin(np.abs(np.asarray(values) - weight)))
    traces = []
    for k, (metric, label) in enumerate(METRICS.items()):
        axis = "" if k == 0 else str(k + 1)
        curve = curves[metric][0]
        traces.append({
            "type": "scatter", "mode": "lines", "name": label, "x": values, "y": curve,
            "xaxis": f"x{axis}", "yaxis": f"y{axis}", "line": {"color": "#1e88e5", "width": 2},
            "hovertemplate": f"weight of {concept} %{{x:.2f}} → {label} %{{y:.3f}}<extra></extra>",
        })
        traces.append({
            "type": "scatter", "mode": "markers", "name": f"{label} now", "x": [values[now]], "y": [curve[now]],
            "xaxis": f"x{axis}", "yaxis": f"y{axis}", "marker": {"color": "#0d47a1", "size": 9},
            "hovertemplate": f"now: weight %{{x:.2f}}, {label} %{{y:.3f}}<extra></extra>",
        })
    return traces


def _what_if_layout():
    layout = {
        "grid": {"rows": 2, "columns": 2, "pattern": "independent"},
        "margin": {"l": 40, "r": 10, "t": 20, "b": 40},
        "showlegend": False,
        "hovermode": "closest",
        "annotations": [],
    }
    for k, label in enumerate(METRICS.values()):
        axis = "" if k == 0 else str(k + 1)
        layout[f"yaxis{axis}"] = {"range": [0, 1.02], "fixedrange": True, "title": {"text": label}}
        layout[f"xaxis{axis}"] = {"fixedrange": True, "zeroline": True,
                                  **({"title": {"text": "weight"}} if k >= 2 else {})}
    return layout


def _presence_traces(presence):
    edges = np.linspace(0, max([1e-6, *(float(v.max()) for v in presence.values() if len(v))]), BINS + 1)
    traces = []
    for group, colour in (("positives", "#43a047"), ("negatives", "#757575")):
        counts, _ = np.histogram(presence[group], edges)
        share = counts / max(len(presence[group]), 1)
        traces.append({
            "type": "bar", "name": f"teacher's predicted {group}",
            "x": ((edges[:-1] + edges[1:]) / 2).round(4).tolist(),
            "y": share.round(4).tolist(), "marker": {"color": colour}, "opacity": 0.6, "customdata": counts.tolist(),
            "hovertemplate": f"presence %{{x:.2f}}: %{{customdata}} of the teacher's {group}<extra></extra>",
        })
    return traces


def _presence_layout():
    return {
        "barmode": "overlay",
        "margin": {"l": 40, "r": 10, "t": 10, "b": 35},
        "legend": {"orientation": "h", "y": 1.1},
        "xaxis": {"title": {"text": "presence (best segment's similarity)"}, "fixedrange": True},
        "yaxis": {"title": {"text": "share"}, "fixedrange": True, "tickformat": ".0%"},
        "bargap": 0.05,
    }
