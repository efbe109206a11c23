"""Student knowledge for the selected class: top concepts, what-if, patches, 👍/👎, Fine-tune.

One chart holds the ranking, one row per concept: 👍/👎 (click to add or remove a pending
instruction), the concept's influence (its weight relative to the class's largest), a what-if
line (F1 against the teacher as this weight varies, the current weight marked) and the image
patches most like the concept with their similarity as a bar (click one to see its image in
the grid). Pending instructions are the workbench's, so they survive reloads, class changes
and a colleague's save; **Fine-tune** applies them all (several classes at once is fine).
"""

import numbers

import fiftyone.operators as foo
import fiftyone.operators.types as types
from PIL import Image, ImageDraw

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.locate import can_locate, concepts_patches, patch_crops
from fiftyone_inficond.students.budget import PATH
from fiftyone_inficond.validation import whole_number

from ..operators.ui import THUMBS, caveats, dropdown, pct
from .base import TuningPanel, answers, select_concept
from .display import CHART_CONFIG, choices, image_uri
from .fine_tune import (
    NOTE_HINT,
    has_pending,
    note_box,
    pending_text,
    toggle_pending,
    tuning_boxes,
    usage_text,
    with_budget,
)
from .workarounds import draw_text, set_chart
from .workbench import DEFAULTS, KNOWLEDGE, open_run, read_workbench, save_workbench_now, write_workbench

RANKINGS = {
    "weight": "influence (weight)",
    "positives": "discrepancy among the teacher's predicted positives",
    "negatives": "discrepancy among the teacher's predicted negatives",
}
TUNING_WORDS = {"factor": "tuning factor", "epochs": "number of retraining epochs"}
COUNTS = (5, 10, 15, 20, 30, 40, PATH[0])  # how many concepts the ranking shows: up to the largest budget
N_PATCHES = 4
ROW_PX = 72  # one concept's row, in the chart and in the patch mosaic
CROP_PX = 60
CELL_PX = 66
BAR_PX = 5


class KnowledgePanel(TuningPanel):
    shows = frozenset({"run", "revision", "cls", "split", "by", "n", "focus", "pending", "budgets", "factor", "epochs",
                       "note"})

    @property
    def config(self):
        return foo.PanelConfig(
            name=KNOWLEDGE,
            label="Student knowledge",
            icon="psychology",
            help_markdown=(
                "The concepts the selected class's student relies on. **👍** asks it to rely more on a "
                "concept, **👎** less (its weight shrinks towards 0, whether it counts for or against the "
                "class); they wait as coloured blocks (blue up, orange down) until you "
                "press **Fine-tune**. The line shows F1 against the teacher as the concept's weight "
                "varies (● is now); the images are the patches most like the concept."
            ),
        )

    @answers
    def on_change_by(self, ctx):
        self.choose(ctx, "by", list(RANKINGS))

    @answers
    def on_change_n(self, ctx):
        workbench = read_workbench(ctx)
        self.choose(ctx, "n", _counts(workbench, open_run(ctx, workbench)))

    @answers
    def on_change_budget(self, ctx):
        """How many concepts the class's student may use, as it is being typed: a pending change that the
        next Fine-tune applies (kept and shown in the pending line, never sent back to its box)."""
        workbench = read_workbench(ctx)
        run = open_run(ctx, workbench)
        value = ctx.params.get("value")
        if value is None:  # emptied while typing
            return
        n = whole_number(value, f"the number of concepts {workbench['cls']} may use", 1, len(run.concepts))
        workbench["budgets"] = with_budget(workbench["budgets"], workbench["cls"], n, run)
        write_workbench(ctx, workbench)
        ctx.panel.state.set({"pending": pending_text(workbench, run), "has_pending": has_pending(workbench)})

    @answers
    def on_change_factor(self, ctx):
        self._setting(ctx, "factor")

    @answers
    def on_change_epochs(self, ctx):
        self._setting(ctx, "epochs")

    @answers
    def on_change_note(self, ctx):
        """The note as it is being typed: kept in the workbench, never sent back (see ``_setting``).
        Only the box of the revision shown counts: the App sends a box's text again when it loses
        focus (the press of Fine-tune) and when it is drawn anew, which arrives after the fine-tune
        that saved the note had emptied it, and would give the next revision the same note."""
        workbench = read_workbench(ctx)
        shown = f"tuning.{note_box(workbench['revision'])}"
        if ctx.params.get("path", shown) != shown:
            return
        workbench["note"] = ctx.params.get("value") or ""
        write_workbench(ctx, workbench)
        # A late change comes with the panel state the App had when it was typed, and the answer is
        # drawn from it: the pending line and Fine-tune are drawn from the workbench as saved (a 👍
        # answered meanwhile greyed Fine-tune out otherwise). Drawn only, not sent as a patch of the
        # panel state: with such a patch, a fresh clone's browser test saw the App send the box's
        # older text after the newer ("more whee" after "more wheel"), and save it as the note.
        saved = save_workbench_now(ctx)
        ctx.panel_state.update(has_pending=has_pending(saved), pending=pending_text(saved, open_run(ctx, saved)))

    def _setting(self, ctx, name):
        """A tuning setting as it is being typed: kept in the workbench and in the pending line, never
        sent back to its box (an answer that set the box while the user typed restarted the exchange,
        1 <-> 1.5 for as long as the panel was open)."""
        workbench = read_workbench(ctx)
        workbench[name] = _typed_number(ctx.params.get("value"), name)
        write_workbench(ctx, workbench)
        ctx.panel.state.pending = pending_text(workbench, open_run(ctx, workbench))

    @answers
    def on_click_chart(self, ctx):
        kind, _, value = str(ctx.params.get("id", "")).partition("|")
        if kind == "concept":
            select_concept(self, ctx, value)
        elif kind in THUMBS:
            self.change(ctx, siblings=True, pending=toggle_pending(read_workbench(ctx), value, kind), message=None)
        elif kind == "patch" and value:  # a cell of the mosaic (the App sends no pixel for an image)
            ctx.ops.set_view(ctx.dataset.select([value]))
            self.change(ctx, message="Grid: the image of that patch")

    @answers
    def on_clear(self, ctx):
        self.change(ctx, pending=[], budgets={}, message="Pending instructions cleared")

    def fill(self, ctx, workbench, run):
        cls, n, by = workbench["cls"], workbench["n"], workbench["by"]
        focus = workbench["focus"]
        ranking = run.top_concepts(cls, n, by=by, sign="absolute" if by == "weight" else "positive",
                                   among=focus or None)
        names = [name for name, _ in ranking]
        curves = run.what_if(cls, names, n_values=21) if names else None
        field = run.config["concepts_field"]
        located = can_locate(ctx.dataset, field)  # not when concepts came from elsewhere or an old version
        patches = concepts_patches(ctx.dataset, names, N_PATCHES, field) if located else {name: [] for name in names}
        metrics = {r["class"]: r for r in run.performance(workbench["split"])["classes"]}[cls]
        ctx.panel.state.set({
            "ready": True,
            "classes": run.classes,
            "controls": {"cls": cls, "by": by, "n": n,
                         "budget": workbench["budgets"].get(cls, run.allowed(cls))},
            "n_concepts": len(run.concepts),
            "counts": _counts(workbench, run),
            "tuning": tuning_boxes(workbench, run.revision),  # the boxes in the tuning row
            "revision": run.revision,
            "header": (
                f"**{cls}** · student AP {pct(metrics['student_ap'])} (teacher {pct(metrics['teacher_ap'])}) · "
                f"F1 vs teacher {pct(metrics['f1'])} · {usage_text(run, cls)} · run '{run.key}' revision {run.revision}"
                + (f" · only the {_concepts(len(focus))} selected on the concept map" if focus else "")
                + ("" if located else f"  \nNo image patches: '{field}' was not computed from these images "
                                      "by this version (compute concepts again to see them)")
                + "".join(f"  \n{caveat}" for caveat in caveats(run.facts()))
            ),
            "pending": pending_text(workbench, run),
            "has_pending": has_pending(workbench),
            "message": self.message(workbench) if names else _nothing_ranked(by, focus),
            "n_rows": len(names),
            "mosaic": [N_PATCHES * CELL_PX, len(names) * ROW_PX],
        })
        if not names:
            return
        crops = iter(patch_crops(ctx.dataset, [p for name in names for p in patches[name]], size=CROP_PX))
        crops = [[next(crops) for _ in patches[name]] for name in names]  # one read of the image paths
        set_chart(ctx, "chart", _traces(names, curves, patches, crops, workbench["pending"], cls))

    def draw(self, panel, state, charts):
        controls = panel.h_stack("controls", align_x="left", gap=2)
        controls.enum("cls", state.classes, label="Class", view=choices(state.classes), on_change=self.on_change_cls)
        controls.enum("by", list(RANKINGS), label="Rank concepts by", view=dropdown(RANKINGS),
                      on_change=self.on_change_by)
        controls.enum("n", state.counts, label="Concepts shown", view=dropdown({n: str(n) for n in state.counts}),
                      on_change=self.on_change_n)
        controls.int("budget", label="Concepts it may use", min=1, max=state.n_concepts,
                     on_change=self.on_change_budget)
        draw_text(panel, state, "header")
        if state.message:
            draw_text(panel, state, "message")
        tuning = panel.h_stack("tuning", align_x="left", align_y="center", gap=2)  # one row: the chart stays in sight
        draw_text(tuning, state, "pending")
        tuning.btn("fine_tune", label="Fine-tune", variant="contained", disabled=not state.has_pending,
                   on_click=self.on_fine_tune)
        tuning.btn("clear", label="Clear", variant="outlined", disabled=not state.has_pending, on_click=self.on_clear)
        tuning.float("factor", label="Tuning factor (> 1)", min=1.01, max=100, on_change=self.on_change_factor)
        tuning.int("epochs", label="Retraining epochs", min=1, max=1000, on_change=self.on_change_epochs)
        tuning.str(note_box(state.revision), label="Note", on_change=self.on_change_note,
                   view=types.TextFieldView(placeholder=NOTE_HINT))
        if not state.n_rows:
            return
        panel.plot(
            "chart",
            data=charts["chart"],
            layout=_layout(state.n_rows, state.mosaic),
            config=CHART_CONFIG,
            on_click=self.on_click_chart,
        )


def _counts(workbench, run):
    """The choices of *Concepts shown*: the usual counts, the one shown, and how many the class's student
    uses (so that one shows every concept it uses)."""
    used = len(run.uses(workbench["cls"])) if run and workbench["cls"] in run.classes else COUNTS[0]
    return sorted({*COUNTS, workbench["n"], used})


def _typed_number(value, name):
    """A tuning box's value as typed: ``None`` (emptied while typing) or a finite number of a size a
    database keeps; anything else (FiftyOne's server takes NaN, infinities and 400-digit integers
    in an event) is refused with what to type, before it reaches the workbench."""
    # NaN and infinities fail the comparison too; a huge integer would overflow math.isfinite
    if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool) and abs(value) < 2**53):
        return value
    raise InvalidRequest(f"The {TUNING_WORDS[name]} is a number like {DEFAULTS[name]}: type it again")


def _nothing_ranked(by, focus):
    """Why a ranking has no rows, and the ways out (every control stays)."""
    where = f"among the {_concepts(len(focus))} selected on the concept map" if focus else "for this class"
    why = "" if by == "weight" else " (the student gets all of those samples right, or there are none)"
    return (f"No concept ranks {where} by {RANKINGS[by]}{why}: rank them another way or choose another class"
            + (", or clear the concept map's selection" if focus else ""))


def _concepts(n):
    return f"{n} concept{'s' if n != 1 else ''}"


def _traces(names, curves, patches, crops, pending, cls):
    """The ranking chart's traces on four subplots, whatever the number of rows: 👍/👎 (x), influence
    (x2), every row's what-if line (x3: each line scaled into its own row) and the patches (x4).
    Plotly redraws the chart at every state change the App makes (a dozen per click); a subplot per
    row made each redraw cost ~0.1 s on 2 cores."""
    weights = curves["weights"]
    labels = [f"{i + 1}. {name}" for i, name in enumerate(names)]
    marked = {(p["concept"], p["direction"]) for p in pending if p["class"] == cls}
    largest = max((abs(w) for w in weights), default=0) or 1
    traces = [thumbs_trace(direction, 0.25 + 0.5 * k, names, labels, marked) for k, direction in enumerate(THUMBS)]
    traces.append({
        "type": "bar",
        "orientation": "h",
        "name": "influence",
        "x": [w / largest for w in weights],
        "y": labels,
        "xaxis": "x2",
        "marker": {"color": ["#455a64" if w >= 0 else "#c62828" for w in weights]},
        "customdata": weights,
        "ids": [f"concept|{name}" for name in names],
        "hovertemplate": ("%{y}: weight %{customdata:.3f} (%{x:.0%} of the largest)<br>"
                          "click for its detail<extra></extra>"),
    })
    traces += _what_if_traces(names, curves)
    mosaic = _mosaic(crops, [[p["similarity"] for p in patches[name]] for name in names])
    axes = {"xaxis": "x4", "yaxis": "y4"}
    traces.append({"type": "image", "name": "patches", "source": image_uri(mosaic), "hoverinfo": "none", **axes})
    traces.append(_patch_cells([[p["sample_id"] for p in patches[name]] for name in names], axes))
    return traces


def _what_if_traces(names, curves):
    """Every row's what-if line in one trace (rows apart by a gap) and its current weight in another:
    row i's weights span x3's [0, 1] and its F1 the band of row i on y3, as each row's own axes did."""
    line = {"x": [], "y": [], "customdata": []}
    now = {"x": [], "y": [], "customdata": []}
    for i, name in enumerate(names):
        values, f1, weight = curves["values"][i], curves["f1"][i], curves["weights"][i]
        x, y = _scaled(values, i, f1)
        line["x"] += x + [None]
        line["y"] += y + [None]
        line["customdata"] += [[name, v, f] for v, f in zip(values, f1)] + [[None, None, None]]
        m = min(range(len(values)), key=lambda k: abs(values[k] - weight))
        now["x"].append(x[m])
        now["y"].append(y[m])
        now["customdata"].append([name, values[m], f1[m]])
    axes = {"xaxis": "x3", "yaxis": "y3"}
    return [
        {"type": "scatter", "mode": "lines", "name": "what-if", **line, **axes, "connectgaps": False,
         "line": {"color": "#1e88e5", "width": 1.5},
         "hovertemplate": "%{customdata[0]}: weight %{customdata[1]:.2f} → F1 %{customdata[2]:.3f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "now", **now, **axes, "marker": {"color": "#0d47a1", "size": 7},
         "hovertemplate": "%{customdata[0]} now: weight %{customdata[1]:.2f}, F1 %{customdata[2]:.3f}<extra></extra>"},
    ]


def _scaled(values, row, f1):
    """A what-if curve placed in row ``row`` of y3 (rows are 1 apart, the first on top): the weights
    spread over [0, 1], the F1 over the row's middle 70 % (higher F1 higher; flat when constant)."""
    def unit(seq):
        low, high = min(seq), max(seq)
        return [0.5 if high == low else (v - low) / (high - low) for v in seq]

    return unit(values), [row + 0.35 - 0.7 * f for f in unit(f1)]


def _patch_cells(sample_ids, axes):
    """An invisible heatmap over the mosaic, one cell per patch: clicking an image trace sends no
    coordinates, a heatmap cell sends its id (``patch|<sample id>``)."""
    cells = [ids + [None] * (N_PATCHES - len(ids)) for ids in sample_ids]
    return {
        "type": "heatmap", "name": "patch cells", "opacity": 0, "showscale": False, **axes,
        "z": [[0 if sample_id is None else 1 for sample_id in row] for row in cells],
        "x0": CELL_PX / 2, "dx": CELL_PX, "y0": ROW_PX / 2, "dy": ROW_PX,
        "ids": [[f"patch|{sample_id or ''}" for sample_id in row] for row in cells],
        "hovertemplate": "click to show its image in the grid<extra></extra>",
    }


def thumbs_trace(direction, x, names, labels, marked):
    """A column of 👍 or 👎 at ``x`` beside the rows ``labels`` (of ``names``), marked where pending."""
    on = [(name, direction) in marked for name in names]
    return {
        "type": "scatter",
        "mode": "markers+text",
        "name": direction,
        "x": [x] * len(names),
        "y": labels,
        "ids": [f"{direction}|{name}" for name in names],
        "text": [THUMBS[direction]] * len(names),
        "textfont": {"size": 18},
        "marker": {
            "symbol": "square",
            "size": 28,
            "color": [("#1e88e5" if direction == "up" else "#fb8c00") if o else "rgba(0,0,0,0)" for o in on],
            "opacity": 0.45,
        },
        "hovertemplate": f"%{{y}}: click to {'add or remove ' + THUMBS[direction]}<extra></extra>",
    }


def _mosaic(crops, similarities):
    """One image of every row's patches (each over a bar as long as its similarity)."""
    rows = max(len(crops), 1)
    image = Image.new("RGB", (N_PATCHES * CELL_PX, rows * ROW_PX), "white")
    draw = ImageDraw.Draw(image)
    for r, (row, sims) in enumerate(zip(crops, similarities)):
        for c, (crop, sim) in enumerate(zip(row, sims)):
            left, top = c * CELL_PX, r * ROW_PX
            image.paste(crop, (left + (CROP_PX - crop.width) // 2, top + (CROP_PX - crop.height) // 2))
            bar = round(max(0.0, min(1.0, sim)) * CROP_PX)
            draw.rectangle([left, top + CROP_PX + 2, left + CROP_PX, top + CROP_PX + 2 + BAR_PX], fill="#e0e0e0")
            draw.rectangle([left, top + CROP_PX + 2, left + bar, top + CROP_PX + 2 + BAR_PX], fill="#1e88e5")
    return image


def _layout(n_rows, mosaic):
    """Row i of every column spans the same band (y and y3 share their range); the mosaic's pixel
    rows match the bands. The same axes for any number of rows: a layout drawn for a moment with
    another answer's data (a sibling's refresh) still fits it."""
    rows = max(n_rows, 1)
    hidden = {"visible": False, "fixedrange": True}
    layout = {
        "height": 40 + ROW_PX * rows,
        "margin": {"l": 150, "r": 5, "t": 30, "b": 10},
        "showlegend": False,
        "hovermode": "closest",
        "xaxis": {**hidden, "domain": [0, 0.1], "range": [0, 1]},
        "yaxis": {"type": "category", "range": [rows - 0.5, -0.5], "fixedrange": True, "automargin": True},
        "xaxis2": {"domain": [0.12, 0.36], "range": [-1.05, 1.05], "fixedrange": True, "side": "top",
                   "tickvals": [-1, 0, 1],
                   "title": {"text": "influence"}, "zeroline": True},
        "yaxis2": {**hidden, "type": "category", "range": [rows - 0.5, -0.5], "anchor": "x2", "matches": "y"},
    }
    width, height = mosaic
    layout["xaxis3"] = {**hidden, "domain": [0.39, 0.62], "range": [-0.03, 1.03], "anchor": "y3"}
    layout["yaxis3"] = {**hidden, "range": [rows - 0.5, -0.5], "anchor": "x3"}
    layout["xaxis4"] = {**hidden, "domain": [0.65, 1], "range": [0, width], "anchor": "y4"}
    layout["yaxis4"] = {**hidden, "domain": [0, 1], "range": [height, 0], "anchor": "x4", "scaleanchor": False}
    layout["annotations"] = [
        {"text": "what-if: F1", "xref": "paper", "yref": "paper", "x": 0.505, "y": 1,
         "yanchor": "bottom", "showarrow": False, "font": {"size": 11}},
        {"text": "most like it", "xref": "paper", "yref": "paper", "x": 0.825, "y": 1,
         "yanchor": "bottom", "showarrow": False, "font": {"size": 11}},
    ]
    return layout
