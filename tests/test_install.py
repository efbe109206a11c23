"""The plugin installed as a FiftyOne user installs it, offline, with no checkout on the path.

The wheel is built from this tree; the plugin folder is fetched by ``fiftyone plugins download``
from an archive served on loopback (as GitHub serves a repository's); its requirements are
installed by ``fiftyone plugins requirements --install`` from the local wheel, into a fresh
virtualenv that already holds every dependency at the tested versions (this environment's
packages, the library excepted, seen through a ``.pth``). Then one operator and one panel
handler run from there.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import zipfile

import pytest
from conftest import REPO

from fiftyone_inficond import __version__
from fiftyone_inficond.students.registry import train_students

PLUGIN = "@inficond/inficond"
ARCHIVE_ROOT = "fiftyone-inficond-main"  # the top folder of a GitHub archive


def _tree():
    """The files of this tree that a clone holds (tracked, or new and not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in listed.split("\0") if f and os.path.isfile(os.path.join(REPO, f))]


def _copy_tree(files, destination):
    for name in files:
        os.makedirs(os.path.join(destination, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, name), os.path.join(destination, name))


def _zip_tree(files, path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            archive.write(os.path.join(REPO, name), f"{ARCHIVE_ROOT}/{name}")


def _environment_with_dependencies(env, view):
    """A virtualenv at ``env`` that sees this environment's packages, the library excepted."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    site = sysconfig.get_paths()["purelib"]
    os.makedirs(view)
    for entry in os.listdir(site):
        if entry.startswith(("fiftyone_inficond", "__editable__")) or entry.endswith(".pth"):
            continue
        os.symlink(os.path.join(site, entry), os.path.join(view, entry))
    (env_site,) = [os.path.join(root, "site-packages") for root, dirs, _ in os.walk(os.path.join(env, "lib"))
                   if "site-packages" in dirs]
    with open(os.path.join(env_site, "dependencies.pth"), "w") as f:
        f.write(view + "\n")
    return os.path.join(env, "bin", "python")


def _normal(pin):
    """A ``name==version`` pin with the name as pip compares names."""
    return re.sub(r"[-_.]+", "-", pin.strip().split("==")[0]).lower() + "==" + pin.strip().split("==")[-1]


@pytest.fixture
def served(tmp_path):
    """An HTTP server on loopback serving ``tmp_path / "www"``; its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


CHECK = """
import json, sys
import fiftyone as fo, fiftyone.operators as foo, fiftyone.plugins as fop
import fiftyone_inficond
from panel_driver import PanelDriver

dataset = fo.load_dataset(sys.argv[1])
listed = foo.execute_operator("@inficond/inficond/list_student_runs", ctx=dict(view=dataset.view(), params={}))
panel = PanelDriver(dataset, "inficond_performance")
panel.event("on_load")
print(json.dumps({"library": fiftyone_inficond.__file__, "version": fiftyone_inficond.__version__,
                  "plugin": fop.get_plugin("@inficond/inficond").directory, "path": sys.path,
                  "runs": sorted(listed.result["runs"]), "panel": panel.state["controls"]}))
"""


def test_the_plugin_installs_with_fiftyones_commands_beside_the_tested_versions_and_runs_from_there(
        distilled, tmp_path, served):
    train_students(distilled, key="installed", epochs=1, budget=8)
    files = _tree()
    www, url = served
    _copy_tree(files, tmp_path / "src")
    _zip_tree(files, www / f"{ARCHIVE_ROOT}.zip")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist,
                    tmp_path / "src"], check=True, capture_output=True)
    python = _environment_with_dependencies(str(tmp_path / "env"), str(tmp_path / "dependencies"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(FIFTYONE_PLUGINS_DIR=str(tmp_path / "plugins"), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(dist))

    def run(*args):
        done = subprocess.run([python, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def fiftyone(*args):
        return run("-c", "import sys; from fiftyone.core.cli import main; sys.exit(main())", *args)

    frozen = set(run("-m", "pip", "freeze").split())
    with open(os.path.join(REPO, "constraints.txt")) as f:
        tested = {_normal(line) for line in f if "==" in line and not line.startswith("#")}
    assert tested <= {_normal(pin) for pin in frozen}  # the env holds every tested version
    fiftyone("plugins", "download", f"{url}/{ARCHIVE_ROOT}.zip")
    fiftyone("plugins", "requirements", PLUGIN, "--install")
    assert set(run("-m", "pip", "freeze").split()) ^ frozen == {f"fiftyone-inficond=={__version__}"}

    shutil.copy(os.path.join(REPO, "tests", "panel_driver.py"), tmp_path)
    (tmp_path / "check.py").write_text(CHECK)
    shown = json.loads(run("check.py", distilled.name).splitlines()[-1])
    assert shown["library"].startswith(str(tmp_path / "env")) and shown["version"] == __version__
    assert os.path.realpath(shown["plugin"]).startswith(str(tmp_path / "plugins"))
    assert not any(os.path.realpath(p or ".") == REPO or p.startswith(REPO + os.sep) for p in shown["path"])
    assert os.listdir(shown["plugin"]) and "fiftyone_inficond" not in os.listdir(shown["plugin"])
    assert shown["runs"] == ["installed"] and shown["panel"]["run"] == "installed"


def test_the_plugin_the_library_and_its_requirements_name_one_version():
    with open(os.path.join(REPO, "plugin", "fiftyone.yml")) as f:
        (declared,) = [line.split(":", 1)[1].strip() for line in f if line.startswith("version:")]
    with open(os.path.join(REPO, "plugin", "requirements.txt")) as f:
        required = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert declared == __version__ and required == [f"fiftyone-inficond=={__version__}"]
