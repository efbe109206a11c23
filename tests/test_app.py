"""The real App in a real browser: the demo world, the saved workspace (grid + panels), the App
server on 127.0.0.1 and Debian's chromium driven by playwright-core through one no-code tuning
loop. Screenshots of every step are kept in tests/artifacts/app/."""

import json
import os
import re
import subprocess

import pytest
from app_server import app_server
from conftest import REPO, unique_name

from fiftyone_inficond.demo import build_world
from fiftyone_inficond.students.registry import delete_students, list_student_runs, load_students, student_history
from fiftyone_inficond.workspace import save_workspace

ARTIFACTS = os.path.join(REPO, "tests", "artifacts", "app")


@pytest.fixture(scope="module")
def app(tmp_path_factory, world_teacher_model):
    name = unique_name("inficond-app")
    dataset, _ = build_world(name, n=60, images=str(tmp_path_factory.mktemp("world")), teacher=world_teacher_model)
    save_workspace(dataset)
    os.makedirs(ARTIFACTS, exist_ok=True)
    try:
        # the App server's log is kept beside the screenshots
        with app_server(name, tmp_path_factory.mktemp("exports"), os.path.join(ARTIFACTS, "server.log")) as url:
            yield url, dataset
    finally:
        for key in list_student_runs(dataset):
            delete_students(dataset, key)
        dataset.delete()


def test_a_whole_tuning_loop_in_the_app(app):
    url, dataset = app
    os.makedirs(ARTIFACTS, exist_ok=True)
    done = subprocess.run(
        ["node", os.path.join(REPO, "tests", "browser", "loop.mjs"), url, ARTIFACTS],
        capture_output=True, text=True, timeout=420,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    with open(os.path.join(ARTIFACTS, "loop.json"), "w") as out:  # what the page showed, beside its screenshots
        json.dump(seen, out, indent=1)
    assert "error" not in seen, seen

    # The worst class by AP gap is selected and the knowledge panel shows it.
    cls = seen["header"].rsplit("Selected class: ", 1)[1].strip()
    assert seen["knowledgeHeader"].startswith(f"{cls} · student AP")
    assert seen["gridBefore"] == "60 samples"
    # Every tab fits 1280x800 and 1600x1000: nothing scrolls sideways, Fine-tune, Clear and the patches
    # are on screen.
    tabs = ("Student performance", "Student knowledge", "Concept map", "Concept detail", "Why this image?",
            "Provenance")
    assert set(seen["fit"]) == {f"{tab}@1600" for tab in tabs} | {f"{tab}@1280" for tab in (
        "performance", "knowledge", "why this image", "provenance", "concept map", "concept detail")}
    assert all(place == {"wide": [], "outside": []} for place in seen["fit"].values()), seen["fit"]
    # A patch click shows its image alone in the grid.
    assert seen["patchGrid"] == "1 sample"
    # Why this image? explains it: the logit is the bias plus the terms shown plus the others.
    logit, bias, shown, others = (float(x) for x in re.search(
        r"its logit ([+-][\d.]+) = bias ([+-][\d.]+) \+ the \d+ concepts below ([+-][\d.]+) \+ \d+ others ([+-][\d.]+)",
        seen["why"]).groups())
    assert logit == pytest.approx(bias + shown + others, abs=0.002) and f" · {cls}: student " in seen["why"]
    # Typing the factor and epochs key by key: at most two calls a keystroke (a clear and each key; the App
    # sends a box's change twice), then silence (no endless exchange), and the boxes keep what was typed.
    keystrokes = 2 + len("2.5") + len("4")
    assert seen["typed"] == ["2.5", "4"] and seen["typingCalls"] <= 2 * keystrokes, seen["typingMethods"]
    assert seen["callsAfterTyping"] == 0, seen["typingMethods"]
    # 👍 on the top concept by discrepancy, pending, then saved as revision 1.
    assert seen["pending"].startswith("Pending 🟦 👍 ") and seen["pending"].split(" for ")[1].startswith(cls)
    assert seen["tuning"].startswith(f"⏳ Fine-tuning {cls}: 1 instruction, 4 epochs")  # at once, while it runs
    assert seen["saved"].startswith("✅ Revision 1 saved") and f"{cls}: student AP" in seen["saved"]
    assert "students, revision 1" in seen["headerAfterTune"]  # the performance panel moved with it
    # Provenance lists the new entry; the history in MongoDB agrees.
    assert "2 entries, 1 fine-tunes" in seen["provenance"] and "👍" in seen["provenanceRow"]
    history = student_history(dataset, "students")
    assert [entry["kind"] for entry in history] == ["train", "tune"]
    assert (history[1]["factor"], history[1]["epochs"]) == (2.5, 4)  # what was typed, not the defaults
    assert history[1]["note"] == "more wheel" and "more wheel" in seen["provenanceRow"]
    # the App sends each change of a text box twice: two calls a key, no exchange
    assert seen["noteCalls"] <= 2 * len("more wheel") + 2 and "“more wheel”" in seen["saved"], seen["noteMethods"]
    # and it stays revision 1's: the box is empty for the next one, after every tab was drawn again
    assert seen["noteAtEnd"] == "", seen["noteChanges"]
    # The answer names the tuned concept's weight before and after.
    concept = seen["pending"].split("👍 ")[1].split(" for ")[0].split(" (+")[0]
    weights = rf"👍 {re.escape(concept)}.* for {cls}: -?\d\.\d{{3}} → -?\d\.\d{{3}}"
    assert re.search(weights, seen["saved"]), seen["saved"]

    # Provenance exports revision 1; its predictions land on every sample.
    assert seen["exported"].startswith("Exported students revision 1 to ") and "MB" in seen["exported"]
    assert seen["predicted"].startswith("student written on 60 samples by export ")
    dataset.reload()
    assert dataset.count("student") == 60
    # Clicking a subset filters the grid to exactly its samples.
    count = int(seen["subset"].split("Grid: the ")[1].split(" ")[0])
    assert seen["gridAfter"] == f"{count} sample{'s' if count != 1 else ''}"

    # The concept map: a lasso filters the knowledge panel to the concepts it caught.
    lassoed = int(seen["lassoed"].split("shows only ")[1].split(":")[0])
    assert lassoed >= 1 and f"only the {lassoed} concept{'s' if lassoed != 1 else ''} selected on the concept map" in (
        seen["knowledgeFiltered"])
    # Clicking a concept opens its detail; Show in grid sorts by its presence and draws its heatmap.
    # its detail opens as a tab of the panels' space, on the selected class
    concept = seen["detailHeader"].split(f" for {cls} · weight")[0]
    assert concept in load_students(dataset, "students").concepts
    assert seen["shownInGrid"].startswith("Grid: the ") and f"where '{concept}' is most present" in seen["shownInGrid"]
    count = int(seen["shownInGrid"].split("Grid: the ")[1].split(" ")[0])
    assert seen["gridWithOverlay"] == f"{count} samples" and seen["overlayActive"] is True
    dataset.reload()
    assert set(dataset.exists("concepts_overlay").values("concepts_overlay.concept")) == {concept}


def test_two_colleagues_apps_keep_their_own_pending_instructions_and_i_am_told_of_my_colleagues_save(
        app, tmp_path):
    url, dataset = app
    revision = len(student_history(dataset, "students")) - 1
    # the colleague's own App server on the same database, as each colleague runs one, as their OS user
    with app_server(dataset.name, tmp_path, os.path.join(ARTIFACTS, "colleague-server.log"),
                    env={"LOGNAME": "alice"}) as their_url:
        done = subprocess.run(
            ["node", os.path.join(REPO, "tests", "browser", "colleagues.mjs"), url, their_url, ARTIFACTS],
            capture_output=True, text=True, timeout=300,
        )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in seen, seen
    # my 👍 is pending in my browser only; theirs shows only their 👎
    assert seen["minePending"].startswith("Pending 🟦 👍 ") and "👎" not in seen["minePending"]
    assert seen["theirsBefore"].startswith("No pending instructions")
    assert seen["theirsPending"].startswith("Pending 🟧 👎 ") and "👍" not in seen["theirsPending"]
    assert seen["theirsSaved"].startswith(f"✅ Revision {revision + 1} saved")
    # my Fine-tune tells me of their save, saves nothing and keeps my 👍; the next saves it onto theirs
    assert f"alice saved revision {revision + 1} of 'students' at " in seen["mineTold"]
    assert seen["mineKept"] == seen["minePending"]
    assert seen["mineSaved"].startswith(f"✅ Revision {revision + 2} saved")
    history = student_history(dataset, "students")
    assert [entry["instructions"][0]["direction"] for entry in history[revision + 1:]] == ["down", "up"]
    assert [entry["note"] for entry in history[revision + 1:]] == ["", ""]  # no note typed: none leaks in
