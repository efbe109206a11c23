"""A user's own raw dataset to a tuned student in the App alone, in a real browser at 1280x800 (each tab
then at 1600x1000 too): images,
ground truth and a team model's predictions, nothing of InFiConD. Concepts (a checkpoint opened with
FiftyOne's file explorer, the corpus by name), the teacher from the predictions field, students with
every field and tag from dropdowns, the workspace opened by training, a 👎/👍 Fine-tune, a note written
later on revision 0, and a revert. Screenshots of every step are kept in tests/artifacts/app/raw-*.png."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from app_server import app_server
from conftest import REPO, unique_name

from fiftyone_inficond.students.registry import delete_students, list_student_runs, load_students
from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT
from fiftyone_inficond.world.dataset import load_world_splits
from fiftyone_inficond.world.scenes import AIRPLANES_UNDER_CLOUDS
from fiftyone_inficond.world.teacher_model import as_fiftyone_model

ARTIFACTS = os.path.join(REPO, "tests", "artifacts", "app")
TABS = ("performance", "knowledge", "provenance", "Concept map", "Concept detail", "Why this image?",
        "Student performance", *(f"{tab}@1600" for tab in ("Student performance", "Student knowledge", "Concept map",
                                                           "Concept detail", "Why this image?", "Provenance")))


@pytest.fixture(scope="module")
def raw_dataset(tmp_path_factory, world_teacher_model):
    """Scenes with ground truth and the biased world teacher's predictions as Classifications with
    confidences (``apply_model``), tagged train/heldout; the world's own truth fields removed."""
    name = unique_name("inficond-raw")
    dataset = load_world_splits(name, str(tmp_path_factory.mktemp("raw")), 40, 20, seed=1,
                                context_with=AIRPLANES_UNDER_CLOUDS)
    dataset.apply_model(as_fiftyone_model(world_teacher_model), label_field="predictions")
    dataset.delete_sample_fields([f for f in dataset.get_field_schema() if f.startswith("world_") or f == "caption"])
    try:
        yield dataset
    finally:
        for key in list_student_runs(dataset):
            delete_students(dataset, key)
        dataset.delete()


def test_a_raw_dataset_reaches_a_noted_and_reverted_revision_through_the_app_alone(raw_dataset, tmp_path):
    dataset = raw_dataset
    assert set(dataset.get_field_schema()) >= {"ground_truth", "predictions"} and not dataset.list_workspaces()
    assert not dataset.list_runs()  # nothing of ours
    os.makedirs(ARTIFACTS, exist_ok=True)
    checkpoint = tmp_path / "my-models" / "world-vit.pt"  # the user's own checkpoint, in a folder of theirs
    checkpoint.parent.mkdir()
    shutil.copy(WORLD_CHECKPOINT, checkpoint)
    # the user's own App: the embedded database, nothing configured (no INFICOND_SERVER_DIRS)
    with app_server(dataset.name, tmp_path, os.path.join(ARTIFACTS, "raw-server.log"),
                    env={"INFICOND_SERVER_DIRS": ""}) as url:
        done = subprocess.run(["node", os.path.join(REPO, "tests", "browser", "raw.mjs"), url, ARTIFACTS,
                               str(checkpoint)], capture_output=True, text=True, timeout=900)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    with open(os.path.join(ARTIFACTS, "raw.json"), "w") as out:
        json.dump(seen, out, indent=1, ensure_ascii=False)
    assert "error" not in seen, seen
    dataset.reload()

    # No traceback anywhere; every operator answered in words, what it wrote and where.
    assert seen["tracebacks"] == []
    assert seen["answers"]["concepts"].startswith(f"Concept vectors of {len(dataset)} samples written to concepts")
    assert seen["answers"]["teacher"].startswith(f"Teacher scores of {len(dataset)} samples written to teacher")
    assert seen["answers"]["train"].startswith("Student run students trained (revision 0). On the 20 held-out "
                                               "samples: teacher AP ")
    # Every known choice came from a dropdown: the only boxes typed into were the file explorer's folder
    # and the note; the shipped corpora were choices by name.
    assert seen["typedInto"] == ["file explorer: folder", "note"]
    assert {"Broden (1,153 concepts)", "The synthetic world's 40 concepts"} <= set(seen["corpora"])
    assert set(dataset.list_runs()) >= {"concepts", "students", "teacher"}
    assert "Compute concepts first" not in seen["trainForm"]  # said only where there are none
    # Training opened the workspace, saved on the dataset; every tab fits 1280x800 and 1600x1000.
    assert dataset.list_workspaces() == ["inficond"] and "Selected class: " in seen["header"]
    assert set(seen["fit"]) == set(TABS) and all(place == {"wide": [], "outside": []} for place in seen["fit"].values())
    # The biased class, 👎 and 👍 pending; the chart did not move under the pointer.
    assert seen["knowledgeHeader"].startswith("airplane · student AP ")
    assert seen["pending"].startswith("Pending 🟧 👎 ") and "🟦 👍 " in seen["pending"]
    assert seen["chartMoved"] <= 1
    assert seen["saved"].startswith("✅ Revision 1 saved (held-out samples) · airplane: student AP ")
    # A note written afterwards on revision 0, said where it was pressed; then the revert.
    assert seen["noted"] == "📝 Note on revision 0 saved: “the teacher as it came”" and seen["notedInView"]
    assert seen["reverted"].startswith("✅ Revision 2 saved: reverted to revision 0") and seen["revertedInView"]
    run = load_students(dataset, "students")
    history = run.history
    assert [entry["kind"] for entry in history] == ["train", "tune", "revert"]
    assert history[0]["note"] == "the teacher as it came" and "0\ttrain\t" in seen["provenanceRows"][3]
    np.testing.assert_array_equal(run.revision_logits(0), run.logits())  # revision 0's weights exactly
