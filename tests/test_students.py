"""Students on coco128: real images (tiny-model concepts), the real YOLOX-Nano teacher, real MongoDB."""

import numpy as np
import pytest
import torch
from conftest import run_python
from scipy.special import expit
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_score, recall_score

from fiftyone_inficond.errors import InvalidRequest, StaleRunError
from fiftyone_inficond.students import evaluation, store
from fiftyone_inficond.students.evaluation import entry_metrics
from fiftyone_inficond.students.metrics import class_metrics
from fiftyone_inficond.students.module import ConceptStudents
from fiftyone_inficond.students.registry import (
    delete_students,
    list_student_runs,
    load_students,
    rename_students,
    train_students,
)

# What most tests here check holds for any training: they train briefly over every concept. The
# default (10 epochs, a budget chosen on a path, about 3 s more a run) is tested by
# test_same_seed_same_students here and in test_budget.py.
QUICK = {"epochs": 3, "budget": None}


def _loss(run, weight, bias, l1):
    module = ConceptStudents(
        torch.tensor(weight), torch.tensor(bias), torch.tensor(run.state.lower), torch.tensor(run.state.upper), l1=l1
    )
    with torch.no_grad():
        return float(module.loss(torch.tensor(run.inputs), torch.tensor(run.data.teacher)))


def test_training_lowers_the_loss(distilled):
    from fiftyone_inficond.students.training import initial_weights

    # 128 samples for 1,153 concepts: smaller, less noisy steps than the defaults suit so few.
    run = train_students(distilled, lr=3e-3, batch_size=32, budget=None)
    start_weight, start_bias = initial_weights(run.data.teacher, len(run.concepts), seed=0)
    # BCE against soft targets bottoms out at their entropy: compare what lies above it.
    p = np.clip(run.data.teacher, 1e-7, 1 - 1e-7)
    floor = float(-(p * np.log(p) + (1 - p) * np.log(1 - p)).mean())
    before = _loss(run, start_weight, start_bias, 1e-4) - floor
    after = _loss(run, run.weight, run.bias, 1e-4) - floor
    assert after < 0.9 * before


def distilled_concepts(dataset):
    return len(dataset.get_run_info("concepts").config.concepts)


def test_l1_gives_sparser_weights(distilled):
    dense = train_students(distilled, key="dense", l1=0.0, epochs=20, budget=None)
    sparse = train_students(distilled, key="sparse", l1=0.05, epochs=20, budget=None)
    assert np.abs(sparse.weight).sum() < 0.7 * np.abs(dense.weight).sum()
    assert (np.abs(sparse.weight) < 1e-2).mean() > (np.abs(dense.weight) < 1e-2).mean()


def test_same_seed_same_students(distilled):
    first = train_students(distilled, key="first", seed=3, epochs=3)  # the default budget path, shortened
    second = train_students(distilled, key="second", seed=3, epochs=3)
    other = train_students(distilled, key="other", seed=4, epochs=3)
    assert np.array_equal(first.weight, second.weight) and np.array_equal(first.bias, second.bias)
    assert not np.array_equal(first.weight, other.weight)


def test_metrics_equal_sklearn(distilled):
    run = train_students(distilled, **QUICK)
    teacher, student, truth = run.data.teacher, run.probabilities(), run.data.truth
    rows = {row["class"]: row for row in run.performance()["classes"]}
    checked = 0
    for j, name in enumerate(run.classes):
        decisions, says = teacher[:, j] >= 0.5, student[:, j] >= 0.5
        row = rows[name]
        assert row["precision"] == pytest.approx(precision_score(decisions, says, zero_division=0))
        assert row["recall"] == pytest.approx(recall_score(decisions, says, zero_division=0))
        assert row["f1"] == pytest.approx(f1_score(decisions, says, zero_division=0))
        if truth[:, j].any():
            assert row["teacher_ap"] == pytest.approx(average_precision_score(truth[:, j], teacher[:, j]))
            assert row["student_ap"] == pytest.approx(average_precision_score(truth[:, j], student[:, j]))
            checked += 1
        else:
            assert row["teacher_ap"] is None and row["student_ap"] is None
        if decisions.any():
            assert row["agreement_ap"] == pytest.approx(average_precision_score(decisions, student[:, j]))
    assert checked == 71  # the README's count of classes present in coco128
    summary = run.performance()["summary"]
    assert summary["teacher_ap"] == pytest.approx(0.81, abs=0.01)  # the README's teacher mAP


def test_sorting_puts_the_worst_first(distilled):
    run = train_students(distilled, **QUICK)
    gaps = [row["ap_gap"] for row in run.performance(sort_by="ap_gap")["classes"] if row["ap_gap"] is not None]
    assert gaps == sorted(gaps, reverse=True)
    f1s = [row["f1"] for row in run.performance(sort_by="f1")["classes"]]
    assert f1s == sorted(f1s)


def test_agreement_subsets_partition_the_samples(distilled):
    run = train_students(distilled, **QUICK)
    subsets = run.agreement("person")
    groups = [set(ids) for named in subsets.values() for ids in named.values()]
    assert sum(len(g) for g in groups) == len(run.ids) == 128
    assert set().union(*groups) == set(run.ids)
    j = run.classes.index("person")
    truth = dict(zip(run.ids, run.data.truth[:, j]))
    says = dict(zip(run.ids, run.probabilities()[:, j] >= 0.5))
    assert all(truth[i] and says[i] for i in subsets["positives"]["student_right"] + subsets["positives"]["both_right"])
    assert all(not truth[i] and says[i]
               for i in subsets["negatives"]["student_wrong"] + subsets["negatives"]["both_wrong"])


def test_rankings(distilled):
    run = train_students(distilled, **QUICK)
    j = run.classes.index("person")
    top = run.top_concepts("person", n=5)
    used = [i for i in np.argsort(-run.weight[j]) if run.weight[j, i] != 0]  # a zero weight decides nothing
    assert [name for name, _ in top] == [run.concepts[i] for i in used[:5]]

    teacher_says = run.data.teacher >= 0.5
    wrong = teacher_says != (run.probabilities() >= 0.5)
    j = int(np.argmax((teacher_says & wrong).sum(0) * (teacher_says & ~wrong).sum(0)))  # both groups present
    members = teacher_says[:, j] & wrong[:, j], teacher_says[:, j] & ~wrong[:, j]
    expected = run.data.concepts[members[0]].mean(0) - run.data.concepts[members[1]].mean(0)
    ranked = run.top_concepts(run.classes[j], n=3, by="positives")
    assert [abs(v) for _, v in ranked] == pytest.approx(sorted(np.abs(expected), reverse=True)[:3])
    for name, value in ranked:
        assert value == pytest.approx(expected[run.concepts.index(name)], abs=1e-6)


def test_what_if_equals_sklearn_on_edited_weights(distilled):
    run = train_students(distilled, **QUICK)
    curves = run.what_if("person", n=3, n_values=5)
    j = run.classes.index("person")
    teacher_says = run.data.teacher[:, j] >= 0.5
    for c, name in enumerate(curves["concepts"]):
        for v, value in enumerate(curves["values"][c]):
            weight = run.weight[j].copy()
            weight[run.concepts.index(name)] = value
            says = expit(run.inputs @ weight + run.bias[j]) >= 0.5
            assert curves["accuracy"][c][v] == pytest.approx(accuracy_score(teacher_says, says))
            assert curves["f1"][c][v] == pytest.approx(f1_score(teacher_says, says, zero_division=0))
            assert curves["recall"][c][v] == pytest.approx(recall_score(teacher_says, says, zero_division=0))
            assert curves["precision"][c][v] == pytest.approx(precision_score(teacher_says, says, zero_division=0))


def _assert_bounds_hold(run):
    for entry in run.history:
        _, state = store.load_state(run.samples, run.key, run.uid, entry["revision"])
        assert (state.weight >= state.lower).all() and (state.weight <= state.upper).all()


def test_tuning_moves_concepts_and_keeps_every_bound(distilled):
    run = train_students(distilled, **QUICK)
    person, car = run.classes.index("person"), run.classes.index("car")
    sky = next(name for name, weight in run.uses("person") if weight > 0 and name != "road"
               and not run.synonyms_of(name))  # 👎: one it uses, without synonyms
    wheel = next(name for name, weight in run.uses("car") if weight > 0 and name != "road"
                 and not run.synonyms_of(name))
    w = run.weight.copy()
    first = run.tune(up={"person": ["road"]}, down={"person": [sky], "car": [wheel]}, factor=2.0)
    assert run.weight[person, run.concepts.index("road")] > w[person, run.concepts.index("road")]
    assert run.weight[person, run.concepts.index(sky)] < w[person, run.concepts.index(sky)]
    assert run.weight[car, run.concepts.index(wheel)] < w[car, run.concepts.index(wheel)]
    untouched = [j for j in range(len(run.classes)) if j not in (person, car)]
    assert np.array_equal(run.weight[untouched], w[untouched])
    assert first["kind"] == "tune" and len(first["change"]) == 3
    assert set(first["class_metrics"]) == {"person", "car"}

    road_lower = run.state.lower[person, run.concepts.index("road")]
    run.tune(up={"person": ["grass"], "car": ["road"]}, epochs=2)
    run.tune(down={"car": ["road"]}, factor=1.2)
    assert run.state.lower[person, run.concepts.index("road")] == road_lower  # earlier bounds kept
    assert np.isfinite(run.state.upper[car, run.concepts.index(wheel)])
    run.tune(up={"person": [sky]})  # the opposite way releases the earlier upper bound
    assert run.state.upper[person, run.concepts.index(sky)] == np.inf
    assert [e["kind"] for e in run.history] == ["train", "tune", "tune", "tune", "tune"]
    _assert_bounds_hold(run)


def test_zero_and_negative_weights_are_tuned_the_right_way():
    from fiftyone_inficond.students.tuning import Instruction, apply_instructions, no_bounds

    weight = np.array([[0.0, -0.4, 0.4, 0.2]], dtype=np.float32)
    lower, upper = no_bounds(weight.shape)
    ups = [Instruction(0, j, "up") for j in range(3)]
    new_lower, _, start = apply_instructions(weight, lower, upper, ups, factor=1.5)
    assert (start[0, :3] > weight[0, :3]).all() and (new_lower[0, :3] == start[0, :3]).all()
    downs = [Instruction(0, j, "down") for j in range(3)]
    new_lower, new_upper, start = apply_instructions(weight, lower, upper, downs, factor=1.5)
    assert (np.abs(start[0, 1:3]) < np.abs(weight[0, 1:3])).all()  # relied on less, whichever the sign
    assert (np.sign(start[0, 1:3]) == np.sign(weight[0, 1:3])).all()  # and never evidence the other way
    assert new_lower[0, 1] == start[0, 1] and new_upper[0, 1] == 0 and new_upper[0, 2] == start[0, 2]
    assert start[0, 0] == new_lower[0, 0] == new_upper[0, 0] == 0  # an unused concept is kept out
    _, _, start = apply_instructions(weight, lower, upper, downs, factor=3)
    assert (start[0, :3] == 0).all()  # a strong 👎 removes a concept, it never flips it
    with pytest.raises(ValueError, match="factor must be greater than 1"):
        apply_instructions(weight, lower, upper, ups, factor=1.0)


def test_a_tune_named_by_the_apps_triples_is_the_same_tune_and_each_split_keeps_its_before_and_after(distilled):
    distilled.take(96, seed=0).tag_samples("train")
    by_class, by_triple = (train_students(distilled, key=key, train_tag="train", **QUICK)
                           for key in ("by_class", "by_triple"))
    before = {split: by_triple.performance(split)["summary"] for split in by_triple.splits}
    by_class.tune(up={"person": ["road"]}, epochs=1)
    entry = by_triple.tune(instructions=[{"class": "person", "concept": "road", "direction": "up"}], epochs=1)
    np.testing.assert_array_equal(by_class.weight, by_triple.weight)
    assert entry["instructions"] == by_class.history[-1]["instructions"]
    # what the message, provenance and a script read agree: one record per split
    assert set(entry["splits"]) == {"validation", "train", "all"}
    for split, kept in entry["splits"].items():
        assert kept["before"] == before[split] and kept["after"] == by_triple.performance(split)["summary"]
        assert list(kept["classes"]) == ["person"]
    assert entry_metrics(entry, "all") == {"before": entry["metrics_before"], "after": entry["metrics_after"],
                                           "classes": entry["class_metrics"]}
    assert entry_metrics(by_triple.revert(0), "validation")["after"] == before["validation"]
    assert entry_metrics(by_triple.history[0], "train")["after"] == before["train"]
    with pytest.raises(InvalidRequest, match="Give each instruction as"):
        by_triple.tune(instructions=[{"class": "person", "concept": "road", "direction": "sideways"}])


def test_a_loaded_run_reads_its_revisions_metrics_and_a_tune_computes_only_the_tuned_class(distilled, monkeypatch):
    distilled.take(96, seed=0).tag_samples("train")
    run = train_students(distilled, train_tag="train", **QUICK)
    run.tune(up={"person": ["road"]}, epochs=1)
    computed = {split: run.performance(split) for split in run.splits}
    passes = []  # the classes of each metrics pass (a pass over 1M samples takes seconds)
    monkeypatch.setattr(evaluation, "class_metrics", lambda teacher, *rest: (
        passes.append(teacher.shape[1]), class_metrics(teacher, *rest))[1])
    loaded = load_students(distilled, run.key)
    assert {split: loaded.performance(split) for split in loaded.splits} == computed and passes == []
    loaded.tune(up={"car": ["road"]}, epochs=1)
    assert passes == [1] * len(loaded.splits)  # car's, on each split
    reverted = loaded.revert(0)
    assert passes == [1] * len(loaded.splits)  # revision 0's are stored
    assert entry_metrics(reverted, "validation")["after"] == entry_metrics(run.history[0], "validation")["after"]
    monkeypatch.undo()
    fresh = train_students(distilled, key="check", train_tag="train", **QUICK)
    fresh.state = loaded.state  # what revision 0's weights compute, without anything stored
    assert {split: fresh.performance(split) for split in fresh.splits} == {
        split: loaded.performance(split) for split in loaded.splits}


def test_revert_restores_bit_for_bit(distilled):
    run = train_students(distilled, **QUICK)
    run.tune(up={"person": ["road"]})
    _, after_first = store.load_state(distilled, run.key, run.uid, 1)
    run.tune(down={"person": ["road"]})
    entry = run.revert(1)
    assert entry["kind"] == "revert" and entry["reverted_to"] == 1 and entry["revision"] == 3
    for name in ("weight", "bias", "lower", "upper"):
        assert np.array_equal(getattr(run.state, name), getattr(after_first, name))
        assert getattr(run.state, name).tobytes() == getattr(after_first, name).tobytes()
    reloaded = load_students(distilled, run.key)
    assert reloaded.revision == 3 and reloaded.weight.tobytes() == after_first.weight.tobytes()


def test_a_run_saved_here_loads_in_another_process(distilled):
    run = train_students(distilled, key="shared", **QUICK)
    run.tune(up={"dog": ["grass"]})
    out = run_python(
        "import fiftyone as fo, hashlib\n"
        "from fiftyone_inficond.students.registry import load_students\n"
        f"run = load_students(fo.load_dataset('{distilled.name}'), 'shared')\n"
        "print(run.revision, hashlib.sha256(run.weight.tobytes() + run.state.lower.tobytes()).hexdigest(),"
        " [e['kind'] for e in run.history])\n"
    )
    import hashlib

    digest = hashlib.sha256(run.weight.tobytes() + run.state.lower.tobytes()).hexdigest()
    assert out.strip().splitlines()[-1] == f"1 {digest} ['train', 'tune']"
    results = distilled.load_run_results("shared", cache=False)  # FiftyOne's own call answers as the run
    assert results.revision == 1 and results.weight.tobytes() == run.weight.tobytes()


def test_a_stale_save_is_refused_and_the_other_save_kept(distilled):
    mine = train_students(distilled, key="team", **QUICK)
    out = run_python(
        "import fiftyone as fo\n"
        "from fiftyone_inficond.students.registry import load_students\n"
        f"run = load_students(fo.load_dataset('{distilled.name}'), 'team')\n"
        "entry = run.tune(up={'person': ['grass']}, user='bob')\n"
        "print(entry['revision'], run.weight.tobytes().hex()[:64])\n"
    )
    revision, bob_prefix = out.strip().splitlines()[-1].split()
    before = mine.probabilities()
    with pytest.raises(StaleRunError, match="changed by bob .*revision 1.*not saved: reload"):
        mine.tune(up={"person": ["sky"]}, user="alice")
    assert mine.revision == 0 and mine.state.upper[0].max() == np.inf  # nothing applied locally
    assert np.array_equal(mine.probabilities(), before)
    history = load_students(distilled, "team").history
    assert [(e["revision"], e["user"]) for e in history] == [(0, history[0]["user"]), (1, "bob")]
    _, bob_state = store.load_state(distilled, "team", mine.uid, 1)
    assert bob_state.weight.tobytes().hex()[:64] == bob_prefix and revision == "1"

    mine.reload().tune(up={"person": ["sky"]}, user="alice")
    assert [e["user"] for e in mine.history][1:] == ["bob", "alice"]


def test_validation_split_by_tag(distilled):
    distilled.take(96, seed=0).tag_samples("train")
    run = train_students(distilled, train_tag="train", **QUICK)
    assert run.data.train.sum() == 96
    concepts = run.data.concepts[run.data.train]
    assert np.allclose(run.config["concept_mean"], concepts.mean(0), atol=1e-6)
    assert len(run.performance(split="validation")["classes"]) == 80


def test_bad_requests_are_explained(distilled):
    run = train_students(distilled, **QUICK)
    with pytest.raises(ValueError, match="already exists"):
        train_students(distilled)
    with pytest.raises(KeyError, match="Class 'unicorn' is not a class"):
        run.tune(up={"unicorn": ["sky"]})
    with pytest.raises(KeyError, match="Concept 'moon' is not in the corpus"):
        run.tune(up={"person": ["moon"]})
    with pytest.raises(ValueError, match="Nothing to tune"):
        run.tune()
    with pytest.raises(ValueError, match="holds no concepts"):
        train_students(distilled, key="other", concepts_field="ground_truth")
    with pytest.raises(ValueError, match="has no validation split"):
        run.performance(split="validation")
    with pytest.raises(KeyError, match="has no student run 'nope'"):
        load_students(distilled, "nope")
    assert [e["kind"] for e in run.history] == ["train"]


def test_several_runs_are_listed_renamed_and_deleted(distilled):
    train_students(distilled, key="a", epochs=1).tune(up={"person": ["sky"]})
    train_students(distilled, key="b", epochs=1)
    assert list_student_runs(distilled) == ["a", "b"]
    with pytest.raises(ValueError, match="already exists"):
        rename_students(distilled, "a", "b")
    rename_students(distilled, "a", "renamed")
    assert [e["kind"] for e in load_students(distilled, "renamed").history] == ["train", "tune"]
    uid = load_students(distilled, "renamed").uid
    delete_students(distilled, "renamed")
    assert list_student_runs(distilled) == ["b"] and store.list_entries(distilled, uid) == []


def test_the_logits_follow_every_revision_tuned_reverted_and_tuned_again(distilled):
    run = train_students(distilled, key="logits", **QUICK)

    def computed_afresh():
        return expit(run.inputs @ run.weight.T + run.bias)

    assert np.allclose(run.probabilities(), computed_afresh(), atol=1e-6)  # now cached for revision 0
    run.tune(up={"dog": ["grass"]})
    assert np.allclose(run.probabilities(), computed_afresh(), atol=1e-6)
    run.revert(0)
    run.probabilities()[:] = 0  # what a caller does with its array is its own
    assert np.allclose(run.probabilities(), computed_afresh(), atol=1e-6)
    run.tune(up={"person": ["sky"]})  # from revision 0's logits: dog's are revision 0's again
    assert np.allclose(run.probabilities(), computed_afresh(), atol=1e-6)
