"""The panels' handlers through FiftyOne's own execution machinery (an ExecutionContext with an
Executor, panel id and state in its params), on the real embedded MongoDB: what the App would
receive is asserted, not the handlers' internals."""

import re
import socket
import sys

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from fiftyone.operators.store import ExecutionStore
from panel_driver import PanelDriver, charts, find, named, ranked

from fiftyone_inficond.fiftyone_api import dataset_id
from fiftyone_inficond.students.evaluation import SPLITS
from fiftyone_inficond.students.registry import load_students, train_students
from fiftyone_inficond.students.store import current_user
from fiftyone_inficond.teacher import set_teacher_scores, teacher_scores
from fiftyone_inficond.workspace import workspace


def _selected_ids(set_view):
    (stage,) = set_view["view"]
    assert stage["_cls"] == "fiftyone.core.stages.Select"
    return dict(stage["kwargs"])["sample_ids"]


@pytest.fixture
def tuned_world(distilled):
    distilled.take(80, seed=0).tag_samples("train")
    run = train_students(distilled, key="panel", train_tag="train", epochs=3, budget=12)  # 12 used: 10 rows shown
    return distilled, run


def test_clicking_a_subset_shows_exactly_its_samples_and_selects_the_class(tuned_world):
    dataset, run = tuned_world
    performance = PanelDriver(dataset, "inficond_performance")
    knowledge = PanelDriver(dataset, "inficond_knowledge", performance.spaces)
    performance.event("on_load")
    assert performance.state["ready"] and performance.state["controls"]["split"] == "validation"
    chart = performance.data["chart"]
    # the run has ground truth: its agreement groups are named by it, never as the teacher's
    assert run.config["gt_field"]
    assert {t["name"] for t in chart} >= {"teacher AP", "student AP",
                                          "ground-truth positives: student wrong, teacher right"}

    counts = run.agreement_counts("validation")
    cls = max(run.classes, key=lambda c: counts[c]["positives"]["student_wrong"])
    expected = run.agreement(cls, "validation")["positives"]["student_wrong"]
    assert expected, "the test needs a class with such samples"
    requests = performance.event("on_click_chart", id=f"subset|positives|student_wrong|{cls}")
    (view,) = find(requests, "set_view")
    assert sorted(_selected_ids(view)) == sorted(expected)
    assert (f"the {len(expected)} held-out samples of '{cls}' among the ground-truth positives where student "
            f"wrong") in performance.state["message"]
    # The other panels shown show the selected class, in the same answer; a hidden tab is left to
    # its on_load (the App stops applying an answer at a patch for a hidden panel).
    assert {p["panel_id"] for p in find(requests, "show_panel_output")} == {performance.id, knowledge.id}
    (shown,) = [p["state"] for p in find(requests, "patch_panel_state")
                if p["panel_id"] == knowledge.id and "controls" in p["state"]]
    assert shown["controls"]["cls"] == cls


def test_a_class_whose_name_holds_a_bar_is_clickable_in_the_performance_panel(distilled):
    scores, classes = teacher_scores(distilled)
    piped = ["car|truck" if name == "car" else name for name in classes]
    set_teacher_scores(distilled, scores, piped, keys=distilled.values("id"), overwrite=True)
    distilled.take(80, seed=0).tag_samples("train")
    run = train_students(distilled, key="piped", train_tag="train", epochs=1, budget=None)
    performance = PanelDriver(distilled, "inficond_performance")
    performance.event("on_load")
    performance.event("on_click_chart", id="class|car|truck")
    assert "Selected class: **car|truck**" in performance.state["header"]
    requests = performance.event("on_click_chart", id="subset|negatives|both_right|car|truck")
    (view,) = find(requests, "set_view")
    assert sorted(_selected_ids(view)) == sorted(run.agreement("car|truck", "validation")["negatives"]["both_right"])
    assert "⚠️" not in (performance.state["message"] or "")


GARBAGE = ["bogus", 10**400, ["validation"], {"value": 1}, ""]


def test_a_cleared_dropdown_or_a_value_no_dropdown_offers_changes_nothing_and_is_refused_in_a_sentence(tuned_world):
    dataset, run = tuned_world
    performance = PanelDriver(dataset, "inficond_performance")
    knowledge = PanelDriver(dataset, "inficond_knowledge", performance.spaces)
    performance.event("on_load")
    knowledge.event("on_load")
    shown = (dict(performance.state["controls"]), dict(knowledge.state["controls"]))
    for panel, control in [(performance, "split"), (performance, "sort"), (performance, "order"),
                           (performance, "run"), (performance, "cls"), (knowledge, "by"), (knowledge, "n"),
                           (knowledge, "cls")]:
        panel.event(f"on_change_{control}", value=None)  # cleared: shows its choice again
        assert "could not do this" not in (panel.state["message"] or ""), (control, panel.state["message"])
        for value in GARBAGE:
            panel.event(f"on_change_{control}", value=value)
            message = panel.state["message"] or ""
            assert "is not one of this list's choices: pick one from the list" in message, (control, value, message)
    performance.event("on_load")
    knowledge.event("on_load")
    assert (dict(performance.state["controls"]), dict(knowledge.state["controls"])) == shown  # nothing stored
    assert "could not do this" not in (performance.state["message"] or "") + (knowledge.state["message"] or "")
    knowledge.event("on_change_n", value=20)  # and the next real choice works
    assert knowledge.state["controls"]["n"] == 20 and len(ranked(knowledge.data["chart"])) <= 20


def test_thumbs_up_then_fine_tune_says_at_once_what_it_tunes_saves_one_entry_and_changes_the_ranking(tuned_world):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    provenance = PanelDriver(dataset, "inficond_provenance", knowledge.spaces)
    performance = PanelDriver(dataset, "inficond_performance", knowledge.spaces)
    knowledge.event("on_load")

    def shown_positive(cls):  # a 👍 must move a concept of positive weight up the ranking; one without synonyms
        knowledge.event("on_change_cls", value=cls)
        names = ranked(knowledge.data["chart"])
        row = run.weight[run.classes.index(cls)]
        return names, [name for name in names if row[run.concepts.index(name)] > 0 and not run.synonyms_of(name)]

    cls = next(c for c in [knowledge.state["controls"]["cls"], *run.classes] if shown_positive(c)[1])
    names, positive = shown_positive(cls)
    assert len(names) == 10 and any(t["type"] == "image" for t in knowledge.data["chart"])
    concept = positive[-1]
    knowledge.event("on_click_chart", id=f"up|{concept}")
    assert "🟦 👍 *" + concept + "* for " + cls in knowledge.state["pending"]
    before = load_students(dataset, "panel").weight[run.classes.index(cls), run.concepts.index(concept)]

    requests = knowledge.event("on_fine_tune")
    # the press answers at once with what is being tuned, the buttons off; the tuning follows
    first = next(p["state"] for p in find(requests, "patch_panel_state") if p["panel_id"] == knowledge.id)
    assert first["message"].startswith(f"⏳ Fine-tuning {cls}: 1 instruction, ") and first["has_pending"] is False
    history = load_students(dataset, "panel").history
    assert [e["kind"] for e in history] == ["train", "tune"]
    assert history[-1]["instructions"] == [{"class": cls, "concept": concept, "direction": "up"}]
    after = load_students(dataset, "panel").weight[run.classes.index(cls), run.concepts.index(concept)]
    assert after > before
    assert knowledge.state["message"].startswith("✅ Revision 1 saved") and not knowledge.state["has_pending"]
    new_names = ranked(knowledge.data["chart"])
    assert new_names != names  # the ranking was redrawn from the tuned weights (the 👍'd weight rose, above)
    (shown,) = [p["state"] for p in find(requests, "patch_panel_state")
                if p["panel_id"] == performance.id and "header" in p["state"]]
    assert "revision 1" in shown["header"]  # the performance panel follows

    performance.event("on_load")
    other = next(c for c in run.classes if c != cls)
    requests = performance.event("on_click_chart", id=f"class|{other}")
    (shown,) = [p["state"] for p in find(requests, "patch_panel_state")
                if p["panel_id"] == knowledge.id and "header" in p["state"]]
    first_line = shown["header"].split("  \n")[0]  # the caveats follow it
    assert first_line.startswith(f"**{other}**") and first_line.endswith("revision 1")  # the tuned run

    provenance.event("on_load")
    rows = provenance.data["entries"]
    assert [r["revision"] for r in rows] == [1, 0] and rows[0]["instructions"] == f"👍 {concept} ({cls})"
    # one change figure: the answer's, on the split shown, is provenance's
    change = knowledge.state["message"].split(" · mean student AP ")[1].split()[0]
    assert f"({SPLITS[run.splits[0]]})" in knowledge.state["message"] and rows[0]["change"] == f"{change} pts"


def test_revert_restores_the_earlier_weights(tuned_world):
    dataset, run = tuned_world
    original = run.weight.copy()
    PanelDriver(dataset, "inficond_knowledge").event("on_load")
    run.tune(up={run.classes[0]: [run.concepts[0]]}, epochs=1)
    provenance = PanelDriver(dataset, "inficond_provenance")
    provenance.event("on_load")
    assert (provenance.state["compare_row"]["compare"] == "0"
            and "Revision 0 vs current" in provenance.state["comparison"])
    provenance.event("on_revert")
    reverted = load_students(dataset, "panel")
    assert reverted.history[-1]["kind"] == "revert" and reverted.history[-1]["reverted_to"] == 0
    np.testing.assert_array_equal(reverted.weight, original)
    assert provenance.state["message"].startswith("✅ Revision 2 saved: reverted to revision 0")


def test_compare_lists_the_classes_that_changed_most_with_their_figures_then_and_now(tuned_world):
    dataset, run = tuned_world
    tuned = next(row["class"] for row in run.performance("validation")["classes"] if row["student_ap"] is not None)
    run.tune(down={tuned: [run.top_concepts(tuned, 1)[0][0]]}, factor=4, epochs=2)
    provenance = PanelDriver(dataset, "inficond_provenance")
    provenance.event("on_load")
    rows = provenance.data["per_class"]
    then, now = run.revision_metrics(0, "validation").rows(run.classes), run.performance("validation")["classes"]
    expected = {a["class"]: (a["student_ap"], b["student_ap"]) for a, b in zip(then, now)}
    shown = lambda value: "–" if value is None else f"{100 * value:.1f}"  # noqa: E731
    assert rows[0]["class"] == tuned and rows[0]["change"] != "+0.00"  # only its student was retrained
    assert all((row["then"], row["now"]) == tuple(map(shown, expected[row["class"]])) for row in rows)
    assert len(rows) == min(10, len(run.classes))
    assert rows[0]["change"] == f"{100 * (expected[tuned][1] - expected[tuned][0]):+.2f}"


def test_a_note_is_written_on_an_earlier_revision_at_any_time_and_kept_by_the_history(tuned_world):
    dataset, run = tuned_world
    run.tune(up={run.classes[0]: [run.concepts[0]]}, epochs=1, note="first try")
    provenance = PanelDriver(dataset, "inficond_provenance")
    provenance.event("on_load")
    assert provenance.state["note_row"] == {"note_on": "1"}  # the current one by default
    provenance.event("on_change_note_on", value="0")
    assert provenance.state["note_row"] == {"note_on": "0"}
    provenance.event("on_save_note")  # nothing typed yet
    assert provenance.state["message"] == "Type the note on revision 0 first, then Save note"
    # as typed in the box, key by key (the App sends each change, with the box's path)
    for typed in ("  baseline", "  baseline  before the cloud fix "):
        provenance.event("on_change_revision_note", path="note_row.note_text", value=typed)
    provenance.event("on_change_revision_note", path="note_row.note_text", value="  baseline")  # late, older
    provenance.state["note_row"]["note_text"] = "  baseline  before the cloud fix "  # the box, sent with the press
    provenance.event("on_save_note")
    assert provenance.state["message"] == "📝 Note on revision 0 saved: “baseline before the cloud fix”"
    assert [row["note"] for row in provenance.data["entries"]] == ["first try", "baseline before the cloud fix"]
    entry = load_students(dataset, "panel").history[0]
    assert entry["note"] == "baseline before the cloud fix" and entry["note_by"] and entry["note_time"]
    np.testing.assert_array_equal(load_students(dataset, "panel").weight, run.weight)  # nothing else changed


def test_export_and_predict_open_their_forms_on_the_run_and_revision_shown(tuned_world):
    dataset, run = tuned_world
    run.tune(up={run.classes[0]: [run.concepts[0]]}, epochs=1)
    provenance = PanelDriver(dataset, "inficond_provenance")
    provenance.event("on_load")
    (prompt,) = find(provenance.event("on_export"), "prompt_user_for_operation")
    assert prompt["operator_uri"].endswith("/export_students") and prompt["params"] == {"key": "panel", "revision": 1}
    (prompt,) = find(provenance.event("on_apply_export"), "prompt_user_for_operation")
    assert prompt["operator_uri"].endswith("/apply_student_export")


def test_a_colleagues_save_is_reported_and_the_pending_instructions_are_kept(tuned_world):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    cls = knowledge.state["controls"]["cls"]
    knowledge.event("on_click_chart", id=f"up|{run.concepts[3]}")
    colleague = load_students(dataset, "panel")  # another client of the same database
    colleague.tune(up={run.classes[1]: [run.concepts[2]]}, epochs=1, user="alice")

    knowledge.event("on_fine_tune")
    history = load_students(dataset, "panel").history
    assert [e.get("user") for e in history][-1] == "alice" and len(history) == 2  # nothing of ours saved
    assert "alice saved revision 1" in knowledge.state["message"]
    assert f"🟦 👍 *{run.concepts[3]}* for {cls}" in knowledge.state["pending"]
    knowledge.event("on_fine_tune")  # now on top of alice's revision
    assert len(load_students(dataset, "panel").history) == 3


def test_a_refusal_is_one_sentence_in_the_panel_and_a_notification(tuned_world):
    dataset, _ = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    knowledge.event("on_change_factor", value=0.5)
    knowledge.event("on_click_chart", id=f"up|{knowledge.state['classes'][0]}")  # not a concept: refused at tune
    requests = knowledge.event("on_fine_tune")
    (notice,) = find(requests, "notify")
    assert notice["variant"] == "error" and "Traceback" not in notice["message"]
    assert knowledge.state["message"].startswith("⚠️ ") and "factor" in knowledge.state["message"]
    assert knowledge.state["has_pending"]  # nothing typed is lost


def test_panels_without_a_run_say_what_to_do(distilled):
    panel = PanelDriver(distilled, "inficond_performance")
    panel.event("on_load")
    assert panel.state["ready"] is False
    output = panel.event("on_load")
    assert find(output, "show_panel_output")


def test_without_located_concepts_the_knowledge_panel_says_why_it_has_no_patches(distilled):
    config = distilled.get_run_info("concepts").config
    config.concept_masks = False  # as a concept run made by an older version
    distilled.update_run_config("concepts", config)
    train_students(distilled, key="old", epochs=1, budget=12)
    knowledge = PanelDriver(distilled, "inficond_knowledge")
    knowledge.event("on_load")
    assert knowledge.state["ready"] and "No image patches: 'concepts' was not computed" in knowledge.state["header"]
    traces = knowledge.data["chart"]
    cells = next(t for t in traces if t["name"] == "patch cells")
    assert {i for row in cells["ids"] for i in row} == {"patch|"} and any(t["type"] == "image" for t in traces)


def test_clicking_a_patch_shows_the_image_it_comes_from(tuned_world):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    traces = knowledge.data["chart"]
    cells = next(t for t in traces if t["name"] == "patch cells")
    assert len(cells["ids"]) == knowledge.state["n_rows"] and cells["type"] == "heatmap"
    clicked = cells["ids"][1][2]  # what the App sends for a heatmap cell: its id, row 1, column 2
    assert clicked.startswith("patch|") and len(clicked) > len("patch|")
    requests = knowledge.event("on_click_chart", id=clicked, trace="patch cells", x=None, y=None)
    assert _selected_ids(find(requests, "set_view")[0]) == [clicked.removeprefix("patch|")]
    assert knowledge.state["message"] == "Grid: the image of that patch"


def test_a_ranking_with_no_rows_keeps_every_control_and_says_what_to_do(tuned_world):
    dataset, run = tuned_world
    cls = next(c for c in run.classes  # a class whose student the teacher's positives never fault
               if not run.top_concepts(c, 10, by="positives", sign="positive"))
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    knowledge.event("on_change_cls", value=cls)
    knowledge.event("on_change_by", value="positives")
    assert knowledge.state["ready"] and knowledge.state["n_rows"] == 0
    assert knowledge.state["message"].startswith("No concept ranks for this class by discrepancy among the teacher's")
    controls = knowledge.state["controls"]
    assert controls == {"cls": cls, "by": "positives", "n": controls["n"], "budget": controls["budget"]}
    knowledge.event("on_change_by", value="weight")  # and the way out works
    assert knowledge.state["n_rows"] > 0 and not knowledge.state["message"].startswith("No concept")


def test_a_typed_factor_and_epochs_are_what_the_fine_tune_records_and_the_box_is_never_answered(tuned_world):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    concept = run.uses(knowledge.state["controls"]["cls"])[0][0]
    knowledge.event("on_click_chart", id=f"up|{concept}")
    for typed in (1, 2, 2.5):  # the box's value after each keystroke of "2.5", as the App sends it
        knowledge.state["tuning"]["factor"] = typed
        requests = knowledge.event("on_change_factor", value=typed)
        patches = find(requests, "patch_panel_state")
        assert patches and all(set(p["state"]) == {"pending"} for p in patches)  # never the box itself
    assert "factor 2.5," in knowledge.state["pending"]
    knowledge.state["tuning"]["epochs"] = 2
    knowledge.event("on_change_epochs", value=2)
    knowledge.state["tuning"]["factor"] = 3.0  # typed, its on_change not yet arrived when Fine-tune is pressed
    knowledge.event("on_fine_tune")
    entry = load_students(dataset, run.key).history[-1]
    assert (entry["kind"], entry["factor"], entry["epochs"]) == ("tune", 3.0, 2)
    assert knowledge.state["message"].startswith(f"✅ Revision {entry['revision']} saved")


@pytest.mark.parametrize("typed", [float("nan"), float("inf"), 10**400, "1.5"])
def test_a_number_box_that_sends_no_usable_number_is_refused_and_the_workbench_keeps_its_value(tuned_world, typed):
    dataset, _ = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    knowledge.event("on_change_factor", value=typed)  # FiftyOne's server takes NaN and 400-digit integers
    assert knowledge.state["message"] == "⚠️ The tuning factor is a number like 1.5: type it again"
    knowledge.event("on_change_epochs", value=2)  # the next event is answered (a NaN stored looped forever)
    assert "factor 1.5, 2 epochs" in knowledge.state["pending"] or knowledge.state["pending"].startswith("No pending")


def test_a_workbench_no_comparison_matches_is_written_over_instead_of_looping(tuned_world):
    dataset, _ = tuned_world
    store = ExecutionStore.create("inficond", dataset_id(dataset))
    key = f"workbench:local:{current_user()}@{socket.gethostname()}"
    store.set(key, {"factor": float("nan"), "epochs": 3})  # as an earlier version could keep it
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    knowledge.event("on_change_epochs", value=4)
    assert store.get(key)["epochs"] == 4


def test_a_tab_opened_again_shows_what_changed_while_it_was_hidden_and_only_then(tuned_world):
    """In the demo workspace the panels are tabs: a change made in one is not pushed to the hidden
    ones; the hidden one's timer asks on being shown again, and redraws only if something changed."""
    dataset, _ = tuned_world
    spaces = workspace()
    performance = PanelDriver(dataset, "inficond_performance", spaces)
    knowledge = PanelDriver(dataset, "inficond_knowledge", spaces)
    knowledge.event("on_load")
    shown_cls = knowledge.state["controls"]["cls"]
    assert knowledge.event("on_shown") == []  # nothing changed: nothing answered, nothing redrawn
    performance.event("on_load")
    other = next(c for c in knowledge.state["classes"] if c != shown_cls)
    requests = performance.event("on_click_chart", id=f"class|{other}")
    assert knowledge.id not in {p["panel_id"] for p in find(requests, "show_panel_output")}  # a hidden tab
    assert knowledge.state["controls"]["cls"] == shown_cls
    assert find(knowledge.event("on_shown"), "show_panel_output")
    assert knowledge.state["controls"]["cls"] == other and knowledge.state["header"].startswith(f"**{other}**")


def test_why_this_image_adds_up_to_the_students_logit_and_tunes_from_there(tuned_world):
    dataset, run = tuned_world
    why = PanelDriver(dataset, "inficond_why", workspace())
    why.event("on_load")
    assert why.state["header"].startswith("Open an image") and not why.state["rows"]  # nothing chosen yet
    row = 3
    sample_id = run.ids[row]
    one = {"selected": [sample_id]}
    why.event("on_change_selected", app=one)
    cls = why.state["controls"]["cls"]
    (bars,) = [trace for trace in why.data["chart"] if trace["name"] == "logit"]
    logit = float(run.logits()[row, run.classes.index(cls)])
    assert sum(bars["x"][:-1]) == pytest.approx(logit, abs=1e-4) and bars["x"][-1] == pytest.approx(logit, abs=1e-4)
    assert bars["y"][0] == "bias" and bars["y"][-1] == "logit" and bars["base"][-1] == 0  # the logit from 0
    assert bars["base"][-2] + bars["x"][-2] == pytest.approx(logit, abs=1e-4)  # the steps end at it
    shown = re.search(r"its logit ([-+][0-9.]+) = bias ", why.state["header"])
    assert shown and float(shown[1]) == pytest.approx(logit, abs=1.5e-3)  # rounded in float32 or 64, either way
    named = bars["y"][1]  # the largest term
    why.event("on_click_chart", app=one, id=f"down|{named}")
    assert f"👎 *{named}*" in why.state["pending"] and f"for {cls}" in why.state["pending"]
    requests = why.event("on_click_chart", app=one, id=f"concept|{named}")
    (view,) = find(requests, "set_view")
    assert _selected_ids(view) == [sample_id]
    dataset.reload()
    assert dataset.exists("concepts_overlay").values("id") == [sample_id]
    assert dataset[sample_id]["concepts_overlay"]["concept"] == named

    newcomer = dataset.add_sample(fo.Sample(filepath=dataset.first().filepath))  # added after training
    why.event("on_change_selected", app={"selected": [newcomer]})
    assert why.state["header"].startswith("This image is not one of the 128 samples student run 'panel' was trained")
    assert not why.state["rows"] and "⚠️" not in (why.state["message"] or "")  # said in place of the chart, no error


def test_two_colleagues_keep_their_own_pending_instructions_and_each_hears_of_the_others_save(
        tuned_world, monkeypatch):
    dataset, run = tuned_world
    mine = PanelDriver(dataset, "inficond_knowledge")
    theirs = PanelDriver(dataset, "inficond_knowledge")

    def event(driver, method, **params):  # each colleague's App runs as their OS user ("local" in FiftyOne)
        monkeypatch.setenv("LOGNAME", "me" if driver is mine else "alice")
        return driver.event(method, **params)

    event(mine, "on_load")
    event(theirs, "on_load")
    cls = mine.state["controls"]["cls"]
    first, second = (name for name, _ in run.top_concepts(cls, 2, sign="absolute"))
    event(mine, "on_click_chart", id=f"up|{first}")
    event(theirs, "on_load")  # a reload of the colleague's page
    assert mine.state["has_pending"] and not theirs.state["has_pending"]
    assert theirs.state["pending"].startswith("No pending instructions")

    event(theirs, "on_change_cls", value=cls)
    event(theirs, "on_click_chart", id=f"down|{second}")
    event(theirs, "on_fine_tune")
    assert theirs.state["message"].startswith("✅ Revision 1 saved")
    event(mine, "on_fine_tune")  # the colleague saved since: told, nothing saved, nothing typed lost
    assert mine.state["message"].startswith("ℹ️ alice saved revision 1 of 'panel' at ")
    assert mine.state["has_pending"] and len(load_students(dataset, "panel").history) == 2
    event(mine, "on_fine_tune")  # now onto revision 1
    history = load_students(dataset, "panel").history
    saved = [(entry["user"], named(entry["instructions"], concept))
             for entry, concept in zip(history[1:], (second, first))]
    assert saved == [("alice", [{"class": cls, "concept": second, "direction": "down"}]),
                     ("me", [{"class": cls, "concept": first, "direction": "up"}])]
    assert mine.state["message"].startswith("✅ Revision 2 saved") and not mine.state["has_pending"]


def test_the_note_typed_beside_fine_tune_is_that_revisions_alone_and_provenance_shows_it(tuned_world):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    provenance = PanelDriver(dataset, "inficond_provenance", knowledge.spaces)
    knowledge.event("on_load")
    cls = knowledge.state["controls"]["cls"]
    (concept, _), = run.top_concepts(cls, 1, sign="absolute")
    knowledge.event("on_click_chart", id=f"down|{concept}")

    def type_note(text):  # as the App does: the box's state path holds it, and the event says it
        box = f"note_{knowledge.state['revision']}"
        knowledge.state["tuning"] = {**knowledge.state["tuning"], box: text}
        knowledge.event("on_change_note", path=f"tuning.{box}", value=text)

    type_note("x" * 201)
    requests = knowledge.event("on_fine_tune")  # refused: one sentence, nothing lost
    assert find(requests, "notify") and "at most 200 characters" in knowledge.state["message"]
    assert knowledge.state["has_pending"] and len(load_students(dataset, "panel").history) == 1
    for typed in ("no", "no sky  shortcut"):  # corrected key by key
        type_note(typed)
    knowledge.event("on_fine_tune")
    (entry,) = load_students(dataset, "panel").history[1:]
    assert entry["note"] == "no sky shortcut" and knowledge.state["message"].startswith(
        "✅ Revision 1 saved “no sky shortcut”")
    assert knowledge.state["tuning"]["note_1"] == ""  # a new box, empty, for the next one
    # the old box's text, sent again by the App when it loses focus, is not the next revision's note
    knowledge.event("on_change_note", path="tuning.note_0", value="no sky shortcut")
    knowledge.event("on_load")
    assert knowledge.state["tuning"]["note_1"] == ""
    provenance.event("on_load")
    assert provenance.data["entries"][0]["note"] == "no sky shortcut" and provenance.data["entries"][1]["note"] == ""


def test_a_late_box_change_answered_while_a_thumb_is_keeps_the_thumb(tuned_world, monkeypatch):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    meanwhile = PanelDriver(dataset, "inficond_knowledge", knowledge.spaces)  # the same panel, another event
    knowledge.event("on_load")
    meanwhile.event("on_load")
    cls = knowledge.state["controls"]["cls"]
    (concept, _), = run.top_concepts(cls, 1, sign="absolute")
    module = sys.modules[type(foo.get_operator(knowledge.uri)).__module__]
    write = module.write_workbench

    def thumb_meanwhile(ctx, workbench):  # the 👍 answered between the note change's read and its save
        monkeypatch.setattr(module, "write_workbench", write)
        meanwhile.event("on_click_chart", id=f"up|{concept}")
        write(ctx, workbench)

    monkeypatch.setattr(module, "write_workbench", thumb_meanwhile)
    knowledge.event("on_change_note", path="tuning.note_0", value="more wheel")
    assert meanwhile.state["has_pending"]
    knowledge.event("on_load")
    assert knowledge.state["has_pending"] and knowledge.state["tuning"]["note_0"] == "more wheel"


def test_a_click_reads_the_workbench_once_writes_it_once_and_redraws_only_the_panels_showing_what_changed(
        tuned_world, monkeypatch):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    performance = PanelDriver(dataset, "inficond_performance", knowledge.spaces)  # shown beside it
    knowledge.event("on_load")
    performance.event("on_load")
    common = sys.modules[type(foo.get_operator("@inficond/inficond/inficond_knowledge")).__module__.rsplit(".", 1)[0]
                         + ".workbench"]
    calls = []
    for name in ("get", "set", "compare_and_set", "set_if_absent"):
        original = getattr(ExecutionStore, name)
        monkeypatch.setattr(ExecutionStore, name, lambda self, *args, _name=name, _original=original, **kwargs: (
            calls.append(_name), _original(self, *args, **kwargs))[1])
    opened = common.open_students
    monkeypatch.setattr(common, "open_students", lambda *args, **kw: calls.append("open") or opened(*args, **kw))

    def redrawn(requests):
        return {r["params"].get("panel_id") for r in requests if r["operator_uri"].endswith("show_panel_output")}

    cls = knowledge.state["controls"]["cls"]
    (concept, _), = run.top_concepts(cls, 1, sign="absolute")
    requests = knowledge.event("on_click_chart", id=f"up|{concept}")  # 👍: the performance panel shows no pending
    assert calls == ["get", "open", "compare_and_set"] and redrawn(requests) == {knowledge.id}
    calls.clear()
    other = next(c for c in run.classes if c != cls)
    requests = knowledge.event("on_change_cls", value=other)  # a class: both show it
    assert calls == ["get", "open", "compare_and_set"] and redrawn(requests) == {knowledge.id, performance.id}
    (patch,) = [p["state"] for p in find(requests, "patch_panel_state") if p["panel_id"] == performance.id
                and "header" in p["state"]]
    assert patch["header"].endswith(f"Selected class: **{other}**")
    calls.clear()
    requests = knowledge.event("on_shown")  # nothing changed meanwhile: a read, nothing answered
    assert calls == ["get"] and requests == []


def test_a_server_failure_is_one_sentence_naming_the_file_that_holds_its_traceback(tuned_world, monkeypatch,
                                                                                   tmp_path):
    dataset, run = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    common = sys.modules[type(foo.get_operator("@inficond/inficond/inficond_knowledge")).__module__.rsplit(".", 1)[0]
                         + ".base"]
    monkeypatch.setattr(common, "ERROR_LOG", str(tmp_path / "logs" / "inficond.log"))
    before = knowledge.state["controls"]["by"]

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(type(run), "top_concepts", broken)
    requests = knowledge.event("on_change_by", value="positives")
    message = knowledge.state["message"]
    assert message == f"⚠️ The server could not do this; nothing was changed (the details are in {common.ERROR_LOG})"
    assert find(requests, "notify") and "Traceback" not in message
    logged = (tmp_path / "logs" / "inficond.log").read_text()
    assert "KnowledgePanel.on_change_by failed" in logged and "RuntimeError: disk on fire" in logged
    monkeypatch.undo()
    knowledge.event("on_load")
    assert knowledge.state["controls"]["by"] == before  # the workbench as the event found it


def test_an_event_the_app_sends_twice_at_once_runs_once_and_its_twin_answers_nothing(tuned_world):
    dataset, _ = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    other = next(c for c in knowledge.state["classes"] if c != knowledge.state["controls"]["cls"])
    first, twin = knowledge.twins("on_change_cls", value=other)
    (shown,) = [p for p in find(first, "show_panel_output") if p["panel_id"] == knowledge.id]
    assert find(first, "patch_panel_state") and charts(shown["output"])["chart"]
    assert twin == []  # not run, nothing drawn again: the App has the first's answer
    assert knowledge.state["controls"]["cls"] == other


def test_a_chart_travels_in_the_layout_and_is_computed_again_where_the_server_has_not_shown_it(tuned_world):
    """The App redraws a chart sent as panel data at each of its renders (a dozen per click), one in
    the layout only when an answer brings it; a server that did not compute the chart (restarted,
    another process) computes it again rather than drawing the panel without it."""
    dataset, _ = tuned_world
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    requests = knowledge.event("on_load")
    (shown,) = [p for p in find(requests, "show_panel_output") if p["panel_id"] == knowledge.id]
    assert ranked(charts(shown["output"])["chart"]) and not find(requests, "patch_panel_data")
    common = sys.modules[type(foo.get_operator("@inficond/inficond/inficond_knowledge")).__module__.rsplit(".", 1)[0]
                         + ".workarounds"]
    drawn = ranked(knowledge.data["chart"])
    common._CHARTS = type(common._CHARTS)()  # as in a server that has not shown the panel
    requests = knowledge.event("on_change_factor", value=2.5)  # an event that shows nothing new
    (shown,) = [p for p in find(requests, "show_panel_output") if p["panel_id"] == knowledge.id]
    assert ranked(charts(shown["output"])["chart"]) == drawn
