"""The library's shape: modules of one concept each, small enough to read, and small defects: no
logger changed by an import, a stale-save refusal that survives its winning revision being gone,
and open_clip's own zero-shot classifier in the teacher."""

import logging
import pathlib

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import REPO, TINY_MODEL, run_python

from fiftyone_inficond.clip import encode_texts, load_clip
from fiftyone_inficond.errors import StaleRunError
from fiftyone_inficond.images import read_image
from fiftyone_inficond.students import store, training
from fiftyone_inficond.students.registry import train_students
from fiftyone_inficond.students.tuning import no_bounds
from fiftyone_inficond.teacher import teacher_from_clip, teacher_scores

MOST_LINES = 360
ONE_CONCEPT = {  # modules longer than that, each one concept: why they are not split
    "teacher.py": "teacher scores from each source (arrays, files, label fields, models, open_clip), one "
                  "entry point each over one shared write",
}


def test_no_module_of_the_core_is_over_360_lines_but_those_that_say_why():
    core = pathlib.Path(REPO) / "fiftyone_inficond"
    sizes = {str(path.relative_to(core)): len(path.read_text().splitlines()) for path in core.rglob("*.py")}
    assert {name for name, lines in sizes.items() if lines > MOST_LINES} == set(ONE_CONCEPT), sizes


def test_importing_the_training_module_changes_no_loggers_level():
    changed = run_python(
        "import logging, pytorch_lightning, torch, sklearn.metrics, scipy.special\n"
        "logging.getLogger('pytorch_lightning.utilities.rank_zero').setLevel(logging.DEBUG)  # a script's choice\n"
        "def levels():\n"
        "    return {name: logger.level for name, logger in logging.root.manager.loggerDict.items()\n"
        "            if isinstance(logger, logging.Logger)}\n"
        "before = levels()\n"
        "import fiftyone_inficond.students.training\n"
        "after = levels()\n"
        "print(sorted(name for name in before if after[name] != before[name]))\n"
    )
    assert changed.strip() == "[]"


@pytest.fixture
def lightning_records():
    """What Lightning's announcing logger emits, with a script's level (INFO) set on it."""
    logger = logging.getLogger(training.LIGHTNING_LOGGER)
    records, handler, level = [], logging.Handler(), logger.level
    handler.emit = records.append
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_fit_quiets_lightning_only_while_it_runs(lightning_records):
    pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)  # the script's own: announced
    assert any(record.levelno == logging.INFO for record in lightning_records)
    lightning_records.clear()

    generator = np.random.default_rng(0)
    targets = generator.uniform(size=(16, 2)).astype(np.float32)
    weight, bias = training.initial_weights(targets, 4, seed=0)
    lower, upper = no_bounds(weight.shape)
    config = training.TrainingConfig(epochs=1, batch_size=8, budget=None)
    training.fit(generator.normal(size=(16, 4)), targets, weight, bias, lower, upper, config)

    assert [record.getMessage() for record in lightning_records if record.levelno < logging.WARNING] == []
    assert logging.getLogger(training.LIGHTNING_LOGGER).level == logging.INFO


def test_a_stale_save_whose_winning_revision_is_gone_is_refused_without_naming_anyone(distilled):
    run = train_students(distilled, key="s", epochs=1, budget=None)
    with pytest.raises(StaleRunError) as refused:
        store.require_fresh(distilled, "s", run.uid, 5)  # revision 6 exists nowhere
    assert str(refused.value) == (
        "Student run 's' was changed after you loaded revision 5. "
        "Your change was not saved: reload the run and apply it again"
    )
    assert run.newest_revision() == 0 and [entry["revision"] for entry in run.history] == [0]


def test_the_clip_teacher_scores_as_clip_with_the_librarys_own_text_embeddings(coco_subset, tiny_checkpoint):
    classes = ["person", "dog", "car", "pizza"]
    teacher_from_clip(coco_subset, classes, model=TINY_MODEL, pretrained=tiny_checkpoint, batch_size=5)
    scores, _ = teacher_scores(coco_subset)

    clip = load_clip(TINY_MODEL, tiny_checkpoint, device="cpu", resize_mode="shortest")
    text = encode_texts(clip, [f"a photo of a {name}." for name in classes])
    images = torch.stack([clip.preprocess(read_image(path)) for path in coco_subset.values("filepath")])
    with torch.no_grad():
        image = F.normalize(clip.model.encode_image(images).float(), dim=-1)
        expected = (clip.model.logit_scale.exp() * image @ text.T).softmax(dim=-1).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
