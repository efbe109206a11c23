"""Why this image? The selected class's logit for one image, concept by concept.

The image is the one open in the sample modal, else the one selected in the grid, else the grid's
only image (a patch clicked in the knowledge panel shows one). A waterfall (each bar starts where
the last ended) adds the student's bias and each concept's value × weight, largest first, up to
the logit; 👍/👎 beside a concept are the same pending instructions as the knowledge panel's, and
clicking a concept's bar draws its heatmap on that image in the grid. See :mod:`fiftyone_inficond.students.explain`.
"""

import os

import fiftyone.operators as foo
import numpy as np
from scipy.special import expit

from fiftyone_inficond.errors import UnknownName
from fiftyone_inficond.students.explain import explain_sample

from ..operators.ui import THUMBS, heatmap_legend, show_overlay
from .base import TuningPanel, answers
from .display import CHART_CONFIG, choices
from .fine_tune import has_pending, pending_text, toggle_pending
from .knowledge import thumbs_trace
from .workarounds import draw_text, set_chart
from .workbench import WHY, open_run, read_workbench

ROW_PX = 30
HOW_TO = ("Open an image (click it), select one (its checkbox), or click a patch in the knowledge panel: "
          "this panel then shows why the student says what it says about it.")


class WhyPanel(TuningPanel):
    shows = frozenset({"run", "revision", "cls", "pending"})

    @property
    def config(self):
        return foo.PanelConfig(
            name=WHY,
            label="Why this image?",
            icon="help_center",
            surfaces="grid modal",
            help_markdown=(
                "One image, the selected class: the student's logit is its bias plus each concept's value "
                "times its weight. The bars add up to it, largest first. **Click a bar**: that concept's "
                "heatmap on the image; **👍/👎** wait with the other pending instructions."
            ),
        )

    @answers
    def on_change_current_sample(self, ctx):
        self.show(ctx)

    @answers
    def on_change_selected(self, ctx):
        self.show(ctx)

    @answers
    def on_change_view(self, ctx):
        self.show(ctx)

    @answers
    def on_click_chart(self, ctx):
        kind, _, value = str(ctx.params.get("id", "")).partition("|")
        sample_id = _sample(ctx)
        if kind in THUMBS:
            self.change(ctx, siblings=True, pending=toggle_pending(read_workbench(ctx), value, kind), message=None)
        elif kind == "concept" and sample_id:
            run = open_run(ctx, read_workbench(ctx))
            shown = show_overlay(ctx, ctx.dataset.select([sample_id]), value, run.config["concepts_field"],
                                 set_view=True)
            self.change(ctx, message=f"Grid: this image; {heatmap_legend(shown)} (field '{shown['field']}')")

    def fill(self, ctx, workbench, run):
        cls = workbench["cls"]
        sample_id = _sample(ctx)
        state = {
            "ready": True,
            "classes": run.classes,
            "controls": {"cls": cls},
            "pending": pending_text(workbench, run),
            "has_pending": has_pending(workbench),
            "message": self.message(workbench),
            "rows": 0,
        }
        if sample_id is None:
            return ctx.panel.state.set({**state, "header": HOW_TO})
        try:
            explained = explain_sample(run, sample_id, cls)
        except UnknownName as refusal:  # an image the run has not seen: the library's sentence
            return ctx.panel.state.set({**state, "header": f"{refusal}."})
        filepath = ctx.dataset.select([sample_id]).first().filepath
        labels = _labels(explained["waterfall"])
        state.update(header=_header(os.path.basename(filepath), explained), rows=len(labels), labels=labels)
        ctx.panel.state.set(state)
        set_chart(ctx, "chart", _traces(explained["waterfall"], labels, workbench["pending"], cls))

    def draw(self, panel, state, charts):
        controls = panel.h_stack("controls", align_x="left", align_y="center", gap=2)
        controls.enum("cls", state.classes, label="Class", view=choices(state.classes), on_change=self.on_change_cls)
        draw_text(panel, state, "header")
        if state.message:
            draw_text(panel, state, "message")
        tuning = panel.h_stack("tuning", align_x="left", align_y="center", gap=2)
        draw_text(tuning, state, "pending")
        tuning.btn("fine_tune", label="Fine-tune", variant="contained", disabled=not state.has_pending,
                   on_click=self.on_fine_tune)
        if state.rows:
            panel.plot("chart", data=charts["chart"], layout=_layout(state.labels), config=CHART_CONFIG,
                       on_click=self.on_click_chart)


def _sample(ctx):
    """The image asked about: the modal's, else the one selected, else the grid's only one."""
    if ctx.current_sample:
        return ctx.current_sample
    if len(ctx.selected) == 1:
        return ctx.selected[0]
    shown = ctx.view.limit(2).values("id")  # one query: is the grid one image?
    return shown[0] if len(shown) == 1 else None


def _header(name, explained):
    cls, waterfall = explained["class"], explained["waterfall"]
    row = next(r for r in explained["classes"] if r["class"] == cls)
    shown = sum(term["contribution"] for term in waterfall["terms"])
    others = [f"{r['class']} {r['student']:.2f} ({r['teacher']:.2f})" for r in explained["classes"]
              if r["class"] != cls and max(r["student"], r["teacher"]) >= 0.5]
    return (
        f"**{name}** · **{cls}**: student {expit(waterfall['logit']):.2f}, teacher {row['teacher']:.2f} · "
        f"its logit {waterfall['logit']:+.3f} = bias {waterfall['bias']:+.3f} + the {len(waterfall['terms'])} "
        f"concepts below {shown:+.3f} + {waterfall['n_others']} others {waterfall['others']:+.3f}"
        + (f"  \nAlso said of it (student, teacher): {', '.join(others)}" if others else "")
    )


def _labels(waterfall):
    """The waterfall's rows: bias, each named concept, the others, the logit."""
    return ["bias", *(term["concept"] for term in waterfall["terms"]), f"{waterfall['n_others']} other concepts",
            "logit"]


def _traces(waterfall, labels, pending, cls):
    """👍/👎 (x) beside a horizontal waterfall (x2) of ``labels``."""
    names = labels[1:-2]
    values = [waterfall["bias"], *(term["contribution"] for term in waterfall["terms"]), waterfall["others"],
              waterfall["logit"]]
    marked = {(p["concept"], p["direction"]) for p in pending if p["class"] == cls}
    traces = [thumbs_trace(direction, 0.25 + 0.5 * k, names, names, marked) for k, direction in enumerate(THUMBS)]
    steps = values[:-1]
    starts = np.concatenate([[0.0], np.cumsum(steps)[:-1]]).tolist()  # each step from the running total
    traces.append({
        "type": "bar", "orientation": "h", "name": "logit", "y": labels, "x": [*steps, values[-1]],
        "base": [*starts, 0.0], "xaxis": "x2",
        "ids": ["bias|", *(f"concept|{name}" for name in names), "others|", "logit|"],  # ids must differ
        "marker": {"color": [*("#455a64" if v >= 0 else "#c62828" for v in steps), "#1e88e5"]},
        "customdata": ["", *(f"value {t['value']:+.2f} × weight {t['weight']:+.3f}" for t in waterfall["terms"]),
                       "", ""],
        "hovertemplate": "%{y}: %{x:+.3f} %{customdata}<extra></extra>",
    })
    return traces


def _layout(labels):
    """The rows in the waterfall's order (the 👍/👎 columns come first and would order them)."""
    rows = len(labels)
    return {
        "height": 60 + ROW_PX * rows,
        "margin": {"l": 150, "r": 10, "t": 40, "b": 10},
        "showlegend": False,
        "hovermode": "closest",
        "xaxis": {"visible": False, "fixedrange": True, "domain": [0, 0.12], "range": [0, 1]},
        "xaxis2": {"domain": [0.15, 1], "fixedrange": True, "side": "top", "zeroline": True,
                   "title": {"text": "adds to the logit"}},
        "yaxis": {"type": "category", "categoryorder": "array", "categoryarray": labels, "autorange": "reversed",
                  "fixedrange": True, "automargin": True},
    }
