"""Sparse students: exact zeros within a concept budget, bounds and 👍 that survive pruning,
synonym groups tuned together, and a fine-tune that says what rose in a 👎'd concept's place."""

import fiftyone as fo
import numpy as np
import pytest
from conftest import unique_name

from fiftyone_inficond.corpus import load_corpus, packaged_corpus
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.runs import CONCEPTS_METHOD, record_run
from fiftyone_inficond.students.budget import check_budget, path_points, pick_budgets, usage
from fiftyone_inficond.students.registry import train_students
from fiftyone_inficond.students.training import TrainingConfig, fit, initial_weights
from fiftyone_inficond.students.tuning import Instruction, apply_instructions, no_bounds
from fiftyone_inficond.synonyms import synonym_groups
from fiftyone_inficond.teacher import set_teacher_scores


def problem(n=400, n_concepts=60, k=3, seed=0):
    """Standardized inputs and teacher probabilities that depend on a few concepts per class."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, n_concepts)).astype(np.float32)
    truth = np.zeros((k, n_concepts))
    for j in range(k):
        truth[j, rng.choice(n_concepts, 4, replace=False)] = rng.choice([-2.0, 2.0], 4)
    teacher = (1 / (1 + np.exp(-(inputs @ truth.T)))).astype(np.float32)
    weight, bias = initial_weights(teacher, n_concepts, 0)
    return inputs, teacher, weight, bias


def test_weights_are_exactly_zero_outside_the_budget():
    inputs, teacher, weight, bias = problem()
    lower, upper = no_bounds(weight.shape)
    fitted, _ = fit(inputs, teacher, weight, bias, lower, upper, TrainingConfig(), budgets=np.array([5, 3, 8]))
    assert usage(fitted).tolist() == [5, 3, 8]
    dense, _ = fit(inputs, teacher, weight, bias, lower, upper, TrainingConfig())
    assert usage(dense).min() == inputs.shape[1]  # without a budget Adam leaves no exact zero


def test_bounds_hold_and_bounded_concepts_stay_after_pruning():
    inputs, teacher, weight, bias = problem()
    lower, upper = no_bounds(weight.shape)
    lower[0, 10], upper[1, 20], upper[2, :30] = 0.5, -0.4, 0.0  # two that must be used, thirty capped at 0
    fitted, _ = fit(inputs, teacher, np.clip(weight, lower, upper), bias, lower, upper, TrainingConfig(),
                    budgets=np.array([4, 4, 4]))
    assert (fitted >= lower).all() and (fitted <= upper).all()
    assert fitted[0, 10] >= 0.5 and fitted[1, 20] <= -0.4
    assert usage(fitted).tolist() == [4, 4, 4]


def test_a_thumbs_up_on_an_unused_concept_brings_it_into_the_budget():
    inputs, teacher, weight, bias = problem()
    lower, upper = no_bounds(weight.shape)
    budgets = np.array([4, 4, 4])
    fitted, fitted_bias = fit(inputs, teacher, weight, bias, lower, upper, TrainingConfig(), budgets=budgets)
    unused = int(np.flatnonzero(fitted[0] == 0)[0])
    lower, upper, start = apply_instructions(fitted, lower, upper, [Instruction(0, unused, "up")], 2.0)
    assert lower[0, unused] > 0
    tuned, _ = fit(inputs, teacher, start, fitted_bias, lower, upper, TrainingConfig(epochs=3), budgets=budgets)
    assert tuned[0, unused] >= lower[0, unused] > 0
    assert usage(tuned).tolist() == [4, 4, 4]  # it took a weaker concept's place


def test_a_thumbs_down_never_makes_a_student_use_a_concept():
    weight = np.array([[0.0, 0.8, -0.2]], np.float32)
    lower, upper = no_bounds(weight.shape)
    lower, upper, start = apply_instructions(weight, lower, upper, [Instruction(0, 0, "down")], 2.0)
    assert upper[0, 0] == 0 and start[0, 0] == 0


def test_the_path_takes_each_class_s_smallest_budget_within_the_tolerance():
    points = [32, 16, 8, 4]
    ap = np.array([[0.90, 0.93, 0.928, 0.80],  # 8 is within 0.005 of the best (16)
                   [0.95, 0.90, 0.85, 0.80],   # only the largest is good enough
                   [np.nan] * 4])              # no teacher positive held out: the smallest
    assert pick_budgets(points, ap).tolist() == [8, 32, 4]
    assert path_points(40) == [40, 32, 24, 16, 12, 8, 4] and path_points(1153)[0] == 64
    assert path_points(3) == [3]


@pytest.mark.parametrize("budget", [0, -1, 1.5, True, "ten", 1154])
def test_budgets_that_are_not_a_number_of_concepts_are_refused(budget):
    with pytest.raises(InvalidRequest, match=r"concept budget .* whole number of at least 1 and at most 1153"):
        check_budget(budget, 1153)


def test_spelling_variants_of_broden_form_groups():
    names = list(load_corpus().names)
    groups = [{names[j] for j in group} for group in synonym_groups(names)]
    for pair in ({"cloud", "clouds"}, {"doorframe", "door frame"}, {"fireplace", "fire place"}):
        assert pair in groups
    assert all(len(group) >= 2 for group in groups) and not any({"handle bar", "handle"} <= g for g in groups)


def test_a_cosine_threshold_joins_near_duplicate_prompts():
    names = ["sky", "heaven", "road", "grass"]
    embeddings = np.array([[1, 0, 0], [0.96, 0.28, 0], [0, 1, 0], [0, 0.6, 0.8]], np.float32)
    assert synonym_groups(names, embeddings, 0.95) == [[0, 1]]
    assert synonym_groups(names, embeddings, 0.5) == [[0, 1], [2, 3]]
    for threshold in (0, 1.5, -0.2, "high"):
        with pytest.raises(InvalidRequest, match="synonym threshold"):
            synonym_groups(names, embeddings, threshold)


@pytest.fixture
def stand_in():
    """A dataset whose teacher says 'class_0' where *cloud* is, and *white* nearly always with
    it (clouds are white): the 👎 of cloud leaves white to stand in for it."""
    rng = np.random.default_rng(0)
    corpus = packaged_corpus("world")
    names = list(corpus.names)
    vectors = rng.normal(0.2, 0.05, size=(300, len(names))).astype(np.float32)
    cloud, white = names.index("cloud"), names.index("white")
    vectors[:, white] = vectors[:, cloud] + rng.normal(0, 0.01, 300)
    logits = 60 * (vectors[:, cloud] - 0.2)
    teacher = np.stack([1 / (1 + np.exp(-logits)), np.full(300, 0.3)], axis=1).astype(np.float32)
    dataset = fo.Dataset(unique_name())
    dataset.add_samples([fo.Sample(filepath=f"/stand-in/{i}.jpg", concepts=v) for i, v in enumerate(vectors)])
    record_run(dataset, "concepts", CONCEPTS_METHOD, corpus_id=corpus.id, concepts=names)
    set_teacher_scores(dataset, teacher, ["class_0", "class_1"])
    yield dataset
    dataset.delete()


def test_a_fine_tune_names_the_concept_that_rose_in_a_thumbs_down_s_place(stand_in):
    run = train_students(stand_in, budget=3)
    assert usage(run.weight).tolist() == [3, 3] and run.budget_of("class_0") == 3
    assert "cloud" in dict(run.uses("class_0"))
    entry = run.tune(down={"class_0": ["cloud"]}, factor=2.0)
    assert run.weight[0, run.concepts.index("cloud")] <= 0
    assert "white" in [r["concept"] for r in entry["rose"]["class_0"]]


def test_a_fine_tune_with_erasure_leaves_no_stand_in_for_a_thumbs_down_concept(stand_in):
    run = train_students(stand_in, budget=3, key="erased")
    cloud = run.concepts.index("cloud")
    train = run.data.train  # the rows the tune learnt from
    entry = run.tune(down={"class_0": ["cloud"]}, factor=2.0, erase=True)
    logits = run.logits()[train, 0]
    assert abs(np.corrcoef(logits, run.inputs[train, cloud])[0, 1]) < 0.05  # white no longer says cloud
    assert entry["erase"] is True and run.history[-1]["erase"] is True
    assert (run.state.lower <= run.weight).all() and (run.weight <= run.state.upper).all()
    assert run.tuned("class_0") == {"up": [], "down": ["cloud"]}  # still 👎'd, and only that (the map's ▼ alone)
    run.revert(0)
    assert "cloud" in dict(run.uses("class_0"))
    with pytest.raises(InvalidRequest, match="Erase is True or False"):
        run.tune(down={"class_0": ["cloud"]}, erase="yes")
    assert run.newest_revision() == 2


def test_a_thumbs_down_on_an_unused_concept_is_refused_and_writes_nothing(stand_in):
    run = train_students(stand_in, budget=3)
    unused = next(name for name in run.concepts if name not in dict(run.uses("class_0")))
    with pytest.raises(InvalidRequest, match=f"does not use '{unused}'.*one of the 3 concepts it uses"):
        run.tune(down={"class_0": [unused]})
    assert run.newest_revision() == 0


def test_one_thumbs_up_or_down_on_a_synonym_acts_on_its_group(stand_in):
    run = train_students(stand_in, budget=4, key="groups")
    assert run.synonyms_of("cloud") == []  # the world corpus spells each thing once
    run.synonym_groups = [[run.concepts.index("sky"), run.concepts.index("water")]]  # as a corpus with both would
    up = run.tune(up={"class_1": ["sky"]}, factor=2.0)
    assert {(c["concept"], c.get("via")) for c in up["change"]} == {("sky", None), ("water", "sky")}
    sky, water = run.concepts.index("sky"), run.concepts.index("water")
    assert run.weight[1, sky] > 0 and run.weight[1, water] > 0  # both entered the budget
    down = run.tune(down={"class_1": ["water"]}, factor=2.0)
    assert {c["concept"] for c in down["change"]} == {"sky", "water"}
    assert np.isfinite(run.state.upper[1, [sky, water]]).all()
    assert (run.weight[1, [sky, water]] <= run.state.upper[1, [sky, water]]).all()


@pytest.mark.parametrize("budget", [0, 41, 2.5])
def test_training_with_an_impossible_budget_is_refused_before_anything_is_written(stand_in, budget):
    with pytest.raises(InvalidRequest, match="concept budget"):
        train_students(stand_in, budget=budget, key="refused")
    assert "refused" not in stand_in.list_runs()
