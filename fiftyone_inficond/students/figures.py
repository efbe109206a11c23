"""A student run's charts for notebooks, as plotly figures: how each class's student keeps up
with its teacher, what a class's student uses, and what moving one concept's weight would do.

Each takes a :class:`~fiftyone_inficond.students.run.StudentRun` and returns a
``plotly.graph_objects.Figure`` titled with what it shows (run, revision, split); the numbers are
the run's own (:meth:`to_pandas`, :meth:`uses`, :meth:`what_if`), not computed again here.
"""

import plotly.graph_objects as go

from fiftyone_inficond.students.evaluation import SPLITS
from fiftyone_inficond.students.run import StudentRun

METRICS = ("accuracy", "f1", "recall", "precision")


def performance_figure(run: StudentRun, split: str | None = None) -> go.Figure:
    """Teacher and student AP against the ground truth per class, worst gap first, with the
    students' agreement AP with their teachers."""
    frame = run.to_pandas(split)
    frame = frame.sort_values("ap_gap", ascending=False, na_position="last")
    figure = go.Figure([
        go.Bar(name="teacher AP", x=frame.index, y=frame["teacher_ap"]),
        go.Bar(name="student AP", x=frame.index, y=frame["student_ap"]),
        go.Scatter(name="agreement AP", x=frame.index, y=frame["agreement_ap"], mode="markers"),
    ])
    figure.update_layout(barmode="group", yaxis_title="AP", yaxis_range=[0, 1],
                         title=f"{_title(run)}: per class, {SPLITS[frame.attrs['split']]}, worst gap first")
    return figure


def concepts_figure(run: StudentRun, cls: str) -> go.Figure:
    """Every concept ``cls``'s student uses, by weight: the whole explanation of the class."""
    used = run.uses(cls)[::-1]  # plotly draws the first bar at the bottom
    figure = go.Figure(go.Bar(x=[w for _, w in used], y=[name for name, _ in used], orientation="h",
                              marker_color=["#2a9d8f" if w > 0 else "#e76f51" for _, w in used]))
    figure.update_layout(title=f"{_title(run)}: the {len(used)} concepts '{cls}' uses",
                         xaxis_title="weight (standardized concept value)", height=max(300, 24 * len(used) + 120))
    return figure


def what_if_figure(run: StudentRun, cls: str, concept: str, n_values: int = 41) -> go.Figure:
    """How ``cls``'s agreement with its teacher would change as ``concept``'s weight moves, without
    retraining; the current weight marked."""
    curves = run.what_if(cls, [concept], n_values=n_values)
    values = curves["values"][0]
    figure = go.Figure([go.Scatter(name=metric, x=values, y=curves[metric][0], mode="lines") for metric in METRICS])
    figure.add_vline(x=curves["weights"][0], line_dash="dot", annotation_text="now")
    figure.update_layout(title=f"{_title(run)}: '{cls}' as the weight of '{concept}' moves",
                         xaxis_title=f"weight of '{concept}'", yaxis_title="against the teacher", yaxis_range=[0, 1])
    return figure


def _title(run):
    return f"Run '{run.key}', revision {run.revision}"
