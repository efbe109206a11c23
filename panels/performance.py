"""Student performance: one row per class, teacher vs student, and the four agreement subsets.

Each row shows the class's teacher and student AP and two stacked bars (the ground-truth positives
and negatives, or the teacher's predicted ones for a run without ground truth) split into the
agreement subsets. Clicking a subset shows exactly its samples in
the grid; clicking a score selects the class for the other panels.
"""

import math

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.students.evaluation import SPLITS
from fiftyone_inficond.students.metrics import GROUPS, SORT_KEYS, SUBSETS
from fiftyone_inficond.students.registry import list_student_runs

from ..operators.ui import caveats, dropdown, group_name, pct
from .base import WorkbenchPanel, answers
from .display import CHART_CONFIG
from .workarounds import draw_text, set_chart
from .workbench import PERFORMANCE, open_run, read_workbench

SUBSET_LABELS = {
    "both_right": "both right",
    "student_wrong": "student wrong, teacher right",
    "both_wrong": "both wrong",
    "student_right": "student right, teacher wrong",
}
SUBSET_COLOURS = {"both_right": "#4caf50", "student_wrong": "#e53935", "both_wrong": "#9e9e9e",
                  "student_right": "#1e88e5"}
SORT_LABELS = {
    "ap_gap": "AP gap to the teacher",
    "agreement_ap": "agreement AP",
    "recall": "recall",
    "precision": "precision",
    "f1": "F1",
}
ORDERS = ["worst first", "best first"]
ROW_PX = 24
LEGEND = "🟩 both right · 🟥 student wrong, teacher right · ⬜ both wrong · 🟦 student right, teacher wrong"


class PerformancePanel(WorkbenchPanel):
    shows = frozenset({"run", "revision", "cls", "split", "sort", "order"})

    @property
    def config(self):
        return foo.PanelConfig(
            name=PERFORMANCE,
            label="Student performance",
            icon="insights",
            help_markdown=(
                "One row per class: the teacher's and the student's AP against the ground truth, and "
                "the ground-truth positives and negatives (the teacher's predicted ones without ground truth) "
                "split by who is right. **Click a bar segment** "
                "to see those samples in the grid; **click a score** to select the class."
            ),
        )

    @answers
    def on_change_run(self, ctx):
        self.choose(ctx, "run", list_student_runs(ctx.dataset), siblings=True, revision=None, cls=None, split=None,
                    message=None)

    @answers
    def on_change_split(self, ctx):
        self.choose(ctx, "split", lambda run: run.splits, siblings=True, message=None)

    @answers
    def on_change_sort(self, ctx):
        self.choose(ctx, "sort", list(SORT_KEYS))

    @answers
    def on_change_order(self, ctx):
        self.choose(ctx, "order", ORDERS)

    @answers
    def on_click_chart(self, ctx):
        """A subset segment shows its samples; a score selects its class."""
        kind, _, rest = str(ctx.params.get("id", "")).partition("|")
        if kind == "class":
            self.change(ctx, siblings=True, cls=rest, message=None)
        elif kind == "subset" and rest.count("|") >= 2:
            group, subset, cls = rest.split("|", 2)  # a class name may hold a "|" itself
            workbench = read_workbench(ctx)
            run = open_run(ctx, workbench)
            view = run.agreement_view(cls, group, subset, workbench["split"])
            ctx.ops.set_view(view)
            workbench.update(cls=cls, **self.says(
                f"Grid: the {len(view)} {SPLITS[workbench['split']]} of '{cls}' among the "
                f"{group_name(group, run)} where {SUBSET_LABELS[subset]}"
            ))
            self.publish(ctx, workbench)

    def fill(self, ctx, workbench, run):
        performance = run.performance(workbench["split"], sort_by=workbench["sort"])
        rows = performance["classes"] if workbench["order"] == "worst first" else performance["classes"][::-1]
        ctx.panel.state.set({
            "ready": True,
            "runs": list_student_runs(ctx.dataset),
            "splits": run.splits,
            "controls": {key: workbench[key] for key in ("run", "split", "sort", "order")},
            "header": _header(run.facts(), workbench, performance["summary"]),
            "message": self.message(workbench),
            "height": 90 + ROW_PX * len(rows),
            "ap_from": ap_axis_start(rows),
            "groups": [group_name(group, run) for group in GROUPS],
        })
        set_chart(ctx, "chart", _traces(rows, run.agreement_counts(workbench["split"]), workbench["cls"], run))

    def draw(self, panel, state, charts):
        controls = panel.h_stack("controls", align_x="left", gap=2)
        controls.enum("run", state.runs, label="Student run", view=types.DropdownView(), on_change=self.on_change_run)
        controls.enum("split", state.splits, label="Samples", view=dropdown({s: SPLITS[s] for s in state.splits}),
                      on_change=self.on_change_split)
        controls.enum("sort", list(SORT_KEYS), label="Sort by", view=dropdown(SORT_LABELS),
                      on_change=self.on_change_sort)
        controls.enum("order", ORDERS, label="Order", view=dropdown({o: o for o in ORDERS}),
                      on_change=self.on_change_order)
        draw_text(panel, state, "header")
        panel.md(LEGEND, name="legend")
        if state.message:
            draw_text(panel, state, "message")
        panel.plot(
            "chart",
            data=charts["chart"],
            layout=_layout(state.height, state.ap_from, state.groups),
            config=CHART_CONFIG,
            on_click=self.on_click_chart,
            height=state.height,
        )


def _header(facts, workbench, summary):
    gt = f"ground truth '{facts['gt_field']}'" if facts["gt_field"] else "no ground truth (agreement only)"
    return (
        f"**{facts['key']}**, revision {facts['revision']} · {facts['samples']:,} samples "
        f"({facts['train_samples']:,} trained on) · {facts['classes']} classes · {facts['concepts']:,} concepts "
        f"from {facts['concept_model']} · teacher '{facts['teacher_field']}' · {gt}  \n"
        + "".join(f"{caveat}  \n" for caveat in caveats(facts)) +
        f"Mean AP on {SPLITS[workbench['split']]}: teacher {pct(summary['teacher_ap'])}, "
        f"student {pct(summary['student_ap'])}, student vs teacher (agreement AP) {pct(summary['agreement_ap'])}. "
        f"Selected class: **{workbench['cls']}**"
    )


def _traces(rows, counts, selected, run):
    """Plotly traces: scores (x axis 1), positives (x2) and negatives (x3) stacked by subset."""
    classes = [row["class"] for row in rows]
    labels = [f"▶ {c}" if c == selected else c for c in classes]
    traces = [
        _score_trace("teacher AP", [row["teacher_ap"] for row in rows], labels, classes, "#757575", "diamond"),
        _score_trace("student AP", [row["student_ap"] for row in rows], labels, classes, "#1e88e5", "circle"),
    ]
    for axis, group in zip(("x2", "x3"), GROUPS):
        for subset in SUBSETS:
            values = [counts[c][group][subset] for c in classes]
            traces.append({
                "type": "bar",
                "orientation": "h",
                "name": f"{group_name(group, run)}: {SUBSET_LABELS[subset]}",
                "x": values,
                "y": labels,
                "xaxis": axis,
                "yaxis": "y",
                "ids": [f"subset|{group}|{subset}|{c}" for c in classes],
                "marker": {"color": SUBSET_COLOURS[subset]},
                "text": [str(v) if v else "" for v in values],
                "textposition": "inside",
                "insidetextanchor": "middle",
                "hovertemplate": (f"%{{y}}: %{{x}} {group_name(group, run)} where {SUBSET_LABELS[subset]}<br>"
                                  "click to show them<extra></extra>"),
            })
    return traces


def _score_trace(name, values, labels, classes, colour, symbol):
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": [None if v is None else round(v, 4) for v in values],
        "y": labels,
        "ids": [f"class|{c}" for c in classes],
        "marker": {"color": colour, "symbol": symbol, "size": 10},
        "hovertemplate": f"%{{y}}: {name} %{{x:.3f}}<br>click to select the class<extra></extra>",
    }


def ap_axis_start(rows):
    """Where the AP axis starts: a tenth below the lowest score shown, so that a gap of a few points
    between teacher ◆ and student ● is visible (on 0-1 they overlapped)."""
    scores = [row[key] for row in rows for key in ("teacher_ap", "student_ap") if row[key] is not None]
    return max(0.0, math.floor(10 * min(scores, default=0.0) - 0.5) / 10)


def _layout(height, ap_from, groups):
    axis = {"showgrid": True, "zeroline": False, "fixedrange": True}
    return {
        "barmode": "stack",
        "height": height,
        "margin": {"l": 130, "r": 10, "t": 50, "b": 20},
        "showlegend": False,
        "xaxis": {**axis, "domain": [0, 0.26], "range": [ap_from, 1.01],
                  "title": {"text": "AP" if ap_from == 0 else f"AP (from {ap_from:.1f})"}, "side": "top"},
        "xaxis2": {**axis, "domain": [0.3, 0.64], "title": {"text": groups[0]}, "side": "top"},
        "xaxis3": {**axis, "domain": [0.68, 1], "title": {"text": groups[1]}, "side": "top"},
        "yaxis": {"autorange": "reversed", "fixedrange": True, "automargin": True, "type": "category"},
        "hovermode": "closest",
        "bargap": 0.25,
    }
