"""The streamed training path (issue 16): students trained from batches read off a disk cache
give the in-memory path's weights (exactly from a float32 cache, float16-close from a float16
one), and the cache is written from a MongoDB cursor without reading all samples at once."""

import hashlib
import json
import os

import fiftyone as fo
import numpy as np
import pytest
from conftest import run_python, unique_name
from sklearn.metrics import average_precision_score

from fiftyone_inficond.corpus import corpus_id
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.runs import CONCEPTS_METHOD, record_run
from fiftyone_inficond.students import cache as streaming_cache
from fiftyone_inficond.students import store, streaming
from fiftyone_inficond.students.registry import delete_students, list_student_runs, train_students
from fiftyone_inficond.students.training import TrainingConfig
from fiftyone_inficond.teacher import set_teacher_scores

N, N_CONCEPTS, N_CLASSES = 300, 40, 5


def synthetic(n=N, n_concepts=N_CONCEPTS, n_classes=N_CLASSES, seed=0):
    rng = np.random.default_rng(seed)
    concepts = (0.15 + rng.random((n, 1)) * 0.1 + rng.random((n, n_concepts)) * 0.1).astype(np.float32)
    z = (concepts - concepts.mean(0)) / concepts.std(0)
    truth = rng.normal(0, 1.5, (n_classes, n_concepts)) * (rng.random((n_classes, n_concepts)) < 0.2)
    return concepts, (1 / (1 + np.exp(-(z @ truth.T - 1.0)))).astype(np.float32)


@pytest.fixture
def small():
    concepts, teacher = synthetic()
    dataset = fo.Dataset(unique_name())
    dataset.add_samples([
        fo.Sample(filepath=f"/synthetic/{i:05d}.jpg", concepts=v, tags=["train"] if i % 3 else ["val"])
        for i, v in enumerate(concepts)
    ])
    names = [f"concept_{j}" for j in range(N_CONCEPTS)]
    record_run(dataset, "concepts", CONCEPTS_METHOD, corpus_id=corpus_id(names), concepts=names)
    set_teacher_scores(dataset, teacher, [f"class_{j}" for j in range(N_CLASSES)])
    yield dataset
    for key in list_student_runs(dataset):
        delete_students(dataset, key)
    dataset.delete()


def test_the_cache_holds_every_row_in_dataset_order(small, tmp_path):
    cache = streaming_cache.cache_inputs(small, str(tmp_path), dtype="float32", chunk_rows=64)  # 5 chunks
    ids, concepts, teacher = small.values(["id", "concepts", "teacher"])
    assert [i.decode() for i in cache.ids] == ids and cache.train.all()
    assert np.array_equal(cache.rows("concepts", np.arange(N)), np.stack(concepts))
    assert np.array_equal(cache.rows("teacher", [5, 2]), np.stack(teacher)[[5, 2]])
    reopened = streaming_cache.InputsCache.open(str(tmp_path))
    assert np.array_equal(reopened.ids, cache.ids) and reopened.dtype == "float32"


def test_streamed_standardization_matches_the_in_memory_one(small, tmp_path):
    cache = streaming_cache.cache_inputs(small, str(tmp_path), dtype="float32", chunk_rows=64)
    concepts = cache.rows("concepts", np.arange(N))
    mean, std = streaming.standardization(cache)
    np.testing.assert_allclose(mean, concepts.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, concepts.std(0), rtol=1e-4)


def test_streamed_training_gives_the_in_memory_weights(small, tmp_path):
    run = train_students(small, key="memory", gt_field=None, train_tag="train", epochs=3, batch_size=32, budget=8)
    cache = streaming_cache.cache_inputs(small, str(tmp_path), train_tag="train", dtype="float32")
    assert cache.train.sum() == 200
    mean = np.asarray(run.config["concept_mean"], np.float32)
    std = np.asarray(run.config["concept_std"], np.float32)
    from fiftyone_inficond.students.training import initial_weights

    train = run.data.train
    weight, bias = initial_weights(run.data.teacher[train], N_CONCEPTS, 0)
    config = TrainingConfig(epochs=3, batch_size=32, budget=8)
    students = streaming.fit_streamed(cache, config, weight, bias, mean=mean, std=std)
    assert (students.weight != 0).sum(1).max() == 8
    np.testing.assert_allclose(students.weight, run.weight, atol=1e-6)
    np.testing.assert_allclose(students.bias, run.bias, atol=1e-6)

    # All defaults (its own standardization and start): the same students to float rounding.
    defaults = streaming.fit_streamed(cache, config)
    np.testing.assert_allclose(defaults.weight, run.weight, atol=1e-4)


def test_a_float16_cache_gives_float16_close_weights_and_the_same_decisions(small, tmp_path):
    # Every concept: float16 rounding may swap a sparse student's weakest concept for another.
    run = train_students(small, key="memory", gt_field=None, epochs=3, batch_size=32, budget=None)
    cache = streaming_cache.cache_inputs(small, str(tmp_path))  # float16 by default
    assert cache.dtype == "float16" and (tmp_path / "concepts.bin").stat().st_size == N * N_CONCEPTS * 2
    students = streaming.fit_streamed(cache, TrainingConfig(epochs=3, batch_size=32, budget=None))
    assert np.abs(students.weight - run.weight).max() < 0.02
    assert np.abs(students.weight - run.weight).mean() < 2e-3
    counts = streaming.streamed_agreement(cache, students, batch_rows=64)
    assert (sum(counts.values()) == N).all()
    student_says = run.probabilities() >= 0.5
    teacher_says = run.data.teacher >= 0.5
    memory_tp = (student_says & teacher_says).sum(0)
    assert np.abs(counts["tp"] - memory_tp).max() <= 3  # of 300: a few borderline samples may flip


def test_streamed_agreement_ap_is_the_exact_ap_within_a_bin(small, tmp_path):
    run = train_students(small, key="memory", gt_field=None, epochs=3, batch_size=32)
    cache = streaming_cache.cache_inputs(small, str(tmp_path), dtype="float32")
    students = streaming.StreamedStudents(run.weight, run.bias, *run._standardization())
    streamed = streaming.streamed_agreement_ap(cache, students, batch_rows=64)
    exact = run._metrics("all").agreement_ap
    assert np.isfinite(exact).all()
    np.testing.assert_allclose(streamed, exact, atol=0.01)
    coarse = streaming.streamed_agreement_ap(cache, students, bins=3, batch_rows=64)
    assert np.abs(coarse - exact).max() > 0.01  # the bins are what the figure rests on


def test_binned_average_precision_is_sklearns_on_binned_scores():
    rng, bins = np.random.default_rng(0), 11
    scores = rng.random((500, 3))
    truth = rng.random((500, 3)) < scores
    truth[:, 2] = False  # no positives: undefined, as sklearn's is
    binned = np.minimum((scores * (bins - 1)).astype(int), bins - 1)
    histogram = lambda mask: np.stack([np.bincount(binned[mask[:, j], j], minlength=bins) for j in range(3)])  # noqa: E731
    ap = streaming.binned_average_precision(histogram(truth), histogram(~truth))
    np.testing.assert_allclose(ap[:2], [average_precision_score(truth[:, j], binned[:, j]) for j in range(2)])
    assert np.isnan(ap[2])


def test_an_empty_split_or_no_inputs_is_refused_before_anything_is_trained(small, tmp_path):
    with pytest.raises(InvalidRequest, match="The training split is empty"):
        streaming_cache.cache_inputs(small, str(tmp_path / "a"), train_tag="no-such-tag")
    with pytest.raises(InvalidRequest, match="holds no teacher scores"):
        streaming_cache.cache_inputs(small, str(tmp_path / "b"), teacher_field="nothing")


def test_a_run_loads_its_own_samples_whether_they_are_most_or_few_of_the_dataset(small):
    from fiftyone_inficond.students.registry import load_students

    most = train_students(small, key="most", gt_field=None, epochs=1)  # read by one scan of the dataset
    few = train_students(small.skip(250), key="few", gt_field=None, epochs=1)  # picked by the database
    for run in (most, few):
        loaded = load_students(small, run.key)
        assert loaded.ids == run.ids and np.array_equal(loaded.inputs, run.inputs)
        assert np.array_equal(loaded.data.teacher, run.data.teacher)
    deleted = small.skip(260).first().id
    small.delete_samples(deleted)
    for run in (most, few):
        left = load_students(small, run.key)
        assert left.samples_deleted == 1 and left.ids == [i for i in run.ids if i != deleted]


def test_a_streamed_run_is_the_in_memory_run_trained_tuned_reverted_and_loaded_by_another_process(small, tmp_path):
    teacher = np.stack(small.values("teacher"))
    rng = np.random.default_rng(1)  # ground truth: the teacher's decisions, a tenth of them flipped
    truth = (teacher >= 0.5) ^ (rng.random(teacher.shape) < 0.1)
    small.set_values("ground_truth", [fo.Classifications(classifications=[
        fo.Classification(label=f"class_{j}") for j in np.flatnonzero(row)]) for row in truth])
    settings = {"train_tag": "train", "epochs": 3, "budget": 8}
    memory = train_students(small, key="memory", streamed=False, **settings)
    streamed = train_students(small, key="streamed", streamed=True, cache_dir=str(tmp_path), **settings)
    assert memory.config["cache"] is None and os.path.dirname(streamed.config["cache"]) == str(tmp_path)

    def same(a, b):  # the cache holds float16 vectors: the same students within float16's precision
        assert np.array_equal(a.weight != 0, b.weight != 0) and np.abs(a.weight - b.weight).max() < 0.02
        assert np.abs(a.probabilities() - b.probabilities()).max() < 0.02
        for split in ("validation", "train"):
            assert b.performance(split)["summary"] == pytest.approx(a.performance(split)["summary"], abs=0.01)
            counts = [[n for group in run.agreement_counts(split).values() for subset in group.values()
                       for n in subset.values()] for run in (a, b)]
            assert np.abs(np.subtract(*counts)).max() <= 2  # a borderline sample may flip

    same(memory, streamed)
    assert streamed.performance("validation")["summary"]["teacher_ap"] > 0.5  # its ground truth was read
    cls = "class_0"
    (concept, _), = memory.top_concepts(cls, 1)
    for run in (memory, streamed):
        run.tune(down={cls: [concept]}, note="less of it")
    same(memory, streamed)
    assert streamed.tuned(cls) == memory.tuned(cls) and concept in memory.tuned(cls)["down"]
    assert np.allclose(streamed.what_if(cls, n=3)["f1"], memory.what_if(cls, n=3)["f1"], atol=0.02)
    for run in (memory, streamed):  # erased batch by batch off disk as in memory
        run.tune(down={cls: [concept]}, erase=True)
    same(memory, streamed)
    streamed.revert(0)
    _, first = store.load_state(small, "streamed", streamed.uid, 0)
    assert streamed.weight.tobytes() == first.weight.tobytes()
    out = run_python(  # another process reads the same cache
        "import fiftyone as fo, hashlib, json\n"
        "from fiftyone_inficond.students.registry import load_students\n"
        f"run = load_students(fo.load_dataset('{small.name}'), 'streamed')\n"
        "print(run.revision, hashlib.sha256(run.weight.tobytes()).hexdigest(),"
        " json.dumps(run.performance('validation')['summary']))\n"
    )
    revision, digest, summary = out.strip().splitlines()[-1].split(" ", 2)
    assert (int(revision), digest) == (3, hashlib.sha256(streamed.weight.tobytes()).hexdigest())
    assert json.loads(summary) == pytest.approx(streamed.performance("validation")["summary"])
    delete_students(small, "streamed")
    assert not os.path.exists(streamed.config["cache"])  # the run's cache goes with it
