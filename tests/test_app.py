"""The real App in a real browser: the demo world, the saved workspace (grid + panels), the App
server on 127.0.0.1 and Debian's chromium driven by playwright-core through one no-code tuning
loop. Screenshots of every step are kept in tests/artifacts/app/."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO, unique_name

from fiftyone_inficond.demo import build_world, save_workspace
from fiftyone_inficond.deploy.export import EXPORT_DIR_ENV
from fiftyone_inficond.students.run import delete_students, list_student_runs, student_history

ARTIFACTS = os.path.join(REPO, "tests", "artifacts", "app")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the App did not answer at {url}")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    name = unique_name("inficond-app")
    dataset, _ = build_world(name, n=60, images=str(tmp_path_factory.mktemp("world")))
    save_workspace(dataset)
    port = _free_port()
    exports = str(tmp_path_factory.mktemp("exports"))
    env = {**os.environ, "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true", EXPORT_DIR_ENV: exports}
    os.makedirs(ARTIFACTS, exist_ok=True)
    log = open(os.path.join(ARTIFACTS, "server.log"), "w")  # the App server's log, kept beside the screenshots
    server = subprocess.Popen(
        [sys.executable, "-m", "fiftyone_inficond.demo", "app", "--name", name, "--port", str(port)],
        env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}/datasets/{name}", dataset
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the children it started
        server.wait(timeout=60)
        log.close()
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
    assert "error" not in seen, seen

    # The worst class by AP gap is selected and the knowledge panel shows it.
    cls = seen["header"].rsplit("Selected class: ", 1)[1].strip()
    assert seen["knowledgeHeader"].startswith(f"{cls} · student AP")
    assert seen["gridBefore"] == "60 samples"
    # 👍 on the top concept by discrepancy, pending, then saved as revision 1.
    assert seen["pending"].startswith("Pending 🟦 👍 ") and seen["pending"].split(" for ")[1].startswith(cls)
    assert seen["saved"].startswith("✅ Revision 1 saved") and f"{cls}: student AP" in seen["saved"]
    assert "students, revision 1" in seen["headerAfterTune"]  # the performance panel moved with it
    # Provenance lists the new entry; the history in MongoDB agrees.
    assert "2 entries, 1 fine-tunes" in seen["provenance"] and "👍" in seen["provenanceRow"]
    assert [entry["kind"] for entry in student_history(dataset, "students")] == ["train", "tune"]

    # Provenance exports revision 1; its predictions land on every sample.
    assert seen["exported"].startswith("Exported students revision 1 to ") and "MB" in seen["exported"]
    assert seen["predicted"].startswith("student written on 60 samples by export ")
    dataset.reload()
    assert dataset.count("student") == 60
    # Clicking a subset filters the grid to exactly its samples.
    count = int(seen["subset"].split("Grid: the ")[1].split(" ")[0])
    assert seen["panelsSayingSo"] == 2  # the knowledge panel followed the performance panel
    assert seen["gridAfter"] == f"{count} sample{'s' if count != 1 else ''}"

    # The concept map: a lasso filters the knowledge panel to the concepts it caught.
    lassoed = int(seen["lassoed"].split("shows only ")[1].split(":")[0])
    assert lassoed >= 1 and f"only the {lassoed} concepts selected on the concept map" in seen["knowledgeFiltered"]
    # Clicking a concept opens its detail; Show in grid sorts by its presence and draws its heatmap.
    concept = seen["detailMessage"].split("'")[1]
    assert seen["detailHeader"].startswith(f"{concept} for {cls} · weight")
    assert seen["shownInGrid"].startswith("Grid: the ") and f"where '{concept}' is most present" in seen["shownInGrid"]
    count = int(seen["shownInGrid"].split("Grid: the ")[1].split(" ")[0])
    assert seen["gridWithOverlay"] == f"{count} samples" and seen["overlayActive"] is True
    dataset.reload()
    assert set(dataset.exists("concepts_overlay").values("concepts_overlay.concept")) == {concept}
