"""Shared fixtures: real coco128 images on the real (embedded or shared) MongoDB, tiny models."""

import os
import subprocess
import sys
import tempfile
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# FiftyOne finds plugins under FIFTYONE_PLUGINS_DIR: a fresh folder holding only this plugin
# (the repository, linked: it is the plugin), set before FiftyOne reads its config, here and in subprocesses.
PLUGINS_DIR = tempfile.mkdtemp(prefix="inficond-plugins-")
os.symlink(REPO, os.path.join(PLUGINS_DIR, "inficond"))
os.environ["FIFTYONE_PLUGINS_DIR"] = PLUGINS_DIR

import pytest  # noqa: E402
import torch  # noqa: E402

from fiftyone_inficond.clip import load_clip  # noqa: E402
from fiftyone_inficond.datasets import load_yolo_multilabel  # noqa: E402
from fiftyone_inficond.extraction import compute_concepts  # noqa: E402
from fiftyone_inficond.students.registry import delete_students, list_student_runs  # noqa: E402
from fiftyone_inficond.teacher import teacher_from_file  # noqa: E402

COCO128 = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "assets", "coco128-train")
)
TINY_MODEL = "inficond-tiny-vit"
# App users may name server files only inside these folders: the test data and pytest's temporary files.
os.environ["INFICOND_SERVER_DIRS"] = os.pathsep.join([COCO128, tempfile.gettempdir()])


def unique_name(prefix="inficond-test"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def coco128_dir():
    assert os.path.isdir(COCO128), f"coco128 test data missing at {COCO128}"
    return COCO128


@pytest.fixture(scope="session")
def coco128_base(coco128_dir):
    dataset = load_yolo_multilabel(coco128_dir, unique_name())
    yield dataset
    dataset.delete()


@pytest.fixture
def coco128(coco128_base):
    """A throw-away copy of coco128 with ground truth, deleted after the test."""
    dataset = coco128_base.clone(unique_name())
    yield dataset
    dataset.delete()


@pytest.fixture
def coco_subset(coco128):
    """The first 12 images: enough for real behaviour, quick on 2 cores."""
    return coco128.limit(12)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint file of the tiny test ViT with weights unlike its seeded initialisation."""
    model = load_clip(TINY_MODEL, device="cpu").model
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    path = tmp_path_factory.mktemp("checkpoints") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def distilled_base(coco128_base, coco128_dir, tiny_checkpoint):
    """coco128 with tiny-model Broden concepts and the real teacher, computed once for the module."""
    dataset = coco128_base.clone(unique_name())
    dataset.persistent = True
    compute_concepts(dataset, model=TINY_MODEL, pretrained=tiny_checkpoint, batch_size=32)  # Broden
    teacher_from_file(dataset, os.path.join(coco128_dir, "teacher_yolox_nano.json"))
    yield dataset
    dataset.delete()


@pytest.fixture
def distilled(distilled_base):
    dataset = distilled_base.clone(unique_name())
    dataset.persistent = True
    yield dataset
    for key in list_student_runs(dataset):
        delete_students(dataset, key)
    dataset.delete()


@pytest.fixture(scope="session")
def world_teacher_model():
    """The world demo's teacher CNN, trained once for the session (each build_world would train it)."""
    from fiftyone_inficond.demo import world_teacher

    return world_teacher()


def run_python(code):
    """Runs ``code`` in a new Python process (a second client of the same database)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_nothing_written(dataset, field):
    dataset.reload()
    assert not dataset.has_sample_field(field)
    assert field not in dataset.list_runs()
    assert not any(name.startswith("inficond_scratch") for name in dataset.get_field_schema())


# The fast tier (`make test-fast`): tests that need neither MongoDB nor a browser nor a CLIP,
# chosen by the fixtures they take, less those marked slow; `make test-fast` makes MongoDB
# unreachable, so a fast test that reaches it fails instead of being quietly slow.
SLOW_FIXTURES = {"coco128_base", "tiny_checkpoint", "own_mongod", "app", "world", "scenes", "small", "stand_in",
                 "tiny_clip", "clip", "world_teacher_model"}


def pytest_collection_modifyitems(items):
    for item in items:
        if not SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.fast)

