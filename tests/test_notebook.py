"""A trained run as a notebook shows it: a one-line repr, an HTML table, a DataFrame and a
per-class report on the held-out split by default, each naming what it shows."""

import subprocess
import sys

import pandas as pd
import pytest

from fiftyone_inficond import concepts_figure, performance_figure, train_students, what_if_figure


@pytest.fixture
def split_run(distilled):
    distilled.take(96, seed=0).tag_samples("train")
    return train_students(distilled, key="notebook", train_tag="train", epochs=2, budget=8)


def test_to_pandas_holds_every_class_on_the_held_out_split_with_the_performance_tables_figures(split_run):
    frame = split_run.to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.attrs["split"] == "validation"
    assert list(frame.index) == split_run.classes
    rows = {row["class"]: row for row in split_run.performance("validation")["classes"]}
    for name in ("person", "car"):
        for column in ("teacher_ap", "student_ap", "agreement_ap", "f1"):
            expected = rows[name][column]
            assert (pd.isna(frame.loc[name, column]) if expected is None
                    else frame.loc[name, column] == pytest.approx(expected))
    assert (frame["concepts_used"] <= 8).all() and frame["concepts_used"].max() > 0
    assert split_run.to_pandas("train").attrs["split"] == "train"


def test_the_report_names_its_split_and_size_and_ends_with_the_means(split_run):
    report = split_run.report()
    title, header, *rows = report.splitlines()
    assert "'notebook'" in title and "held-out samples (32 of 128)" in title
    assert "student_ap" in header and "concepts_used" in header
    assert rows[-1].startswith("mean") and len(rows) == len(split_run.classes) + 1
    assert "training samples (96 of 128)" in split_run.report("train").splitlines()[0]


def test_repr_says_what_the_run_is_and_html_shows_the_table(split_run):
    text = repr(split_run)
    assert text.startswith("<StudentRun 'notebook' of dataset ")
    assert f"{len(split_run.classes)} classes over {len(split_run.concepts)} concepts, revision 0" in text
    assert "96 training samples of 128" in text and "(held-out samples)" in text
    html = split_run._repr_html_()
    assert html.startswith("<p>&lt;StudentRun") and html.count("<tr") == len(split_run.classes) + 2


def test_a_normal_fit_prints_nothing(tmp_path):
    """Python's default warning filters, a fresh process: the first fit is where Lightning warned."""
    script = ("import numpy as np; from fiftyone_inficond import SparseStudents; rng = np.random.default_rng(0); "
              "X = rng.random((64, 12), dtype=np.float32); Y = (X[:, :2] > 0.5).astype(np.float32); "
              "SparseStudents(budget=4, epochs=2).fit(X, Y); print('fitted')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "fitted\n" and done.stderr == "", done.stderr


def test_the_figures_draw_the_runs_own_numbers_and_say_what_they_show(split_run):
    performance = performance_figure(split_run)
    teacher, student, agreement = performance.data
    frame = split_run.to_pandas()
    worst = frame["ap_gap"].idxmax()
    assert teacher.x[0] == worst and student.y[0] == pytest.approx(frame.loc[worst, "student_ap"])
    assert "revision 0" in performance.layout.title.text and "held-out samples" in performance.layout.title.text

    used = split_run.uses("person")
    (bars,) = concepts_figure(split_run, "person").data
    assert list(bars.y) == [name for name, _ in used][::-1] and len(bars.x) == len(used) <= 8

    concept = used[0][0]
    curves = what_if_figure(split_run, "person", concept, n_values=11)
    assert [trace.name for trace in curves.data] == ["accuracy", "f1", "recall", "precision"]
    expected = split_run.what_if("person", [concept], n_values=11)
    assert list(curves.data[1].y) == pytest.approx(expected["f1"][0])
    assert f"weight of '{concept}'" in curves.layout.xaxis.title.text


def test_training_and_tuning_report_every_epoch_of_each_stage(distilled):
    reports = []

    def heard(bar):
        reports.append((bar.iteration, bar.total))

    run = train_students(distilled, key="progress", epochs=3, progress=heard)
    finals = [(i, total) for i, total in reports if i == total]
    assert len(finals) == 2 and reports[0] == (1, finals[0][1])  # choosing budgets, then fitting
    assert len(reports) == sum(total for _, total in finals)  # one report per epoch, none lost
    reports.clear()
    (concept, _), = run.top_concepts("person", n=1)
    run.tune(down={"person": [concept]}, epochs=2, progress=heard)
    assert reports == [(1, 2), (2, 2)]
