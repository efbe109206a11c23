"""Student speed at 10,000 samples x 1,153 concepts x 80 classes on the CPU, in one run.

The data are synthetic but shaped like the real thing: concept vectors correlated like CLIP
similarities, and a teacher whose classes depend on a few concepts each. They live in a real
FiftyOne dataset on the real database, so tuning includes reading, metrics and saving.
The paper (InFiConD) reports about 30 s for 10 training epochs; ratios are ours / theirs.
``train_s`` is a fit at a given concept budget; ``path_s`` chooses each class's budget
(``budget="auto"``, the default); ``train_students`` (and tuning) include both.
"""

import argparse
import logging
import uuid

import fiftyone as fo
import numpy as np
from timing import timed

from fiftyone_inficond.corpus import load_corpus
from fiftyone_inficond.runs import CONCEPTS_METHOD, record_run
from fiftyone_inficond.students.registry import delete_students, load_students, train_students
from fiftyone_inficond.students.training import TrainingConfig, class_budgets, fit, fit_to_budgets, initial_weights
from fiftyone_inficond.students.tuning import no_bounds
from fiftyone_inficond.teacher import set_teacher_scores

PAPER_TRAIN_S = 30.0
BUDGET = 20  # concepts per class of the timed sparse fit


def synthetic(n, n_concepts, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.random((n, 1)) * 0.1  # CLIP similarities rise and fall together
    concepts = (0.15 + shared + rng.random((n, n_concepts)) * 0.1).astype(np.float32)
    z = (concepts - concepts.mean(0)) / concepts.std(0)
    truth = rng.normal(0, 1.5, (n_classes, n_concepts)) * (rng.random((n_classes, n_concepts)) < 0.01)
    return concepts, 1 / (1 + np.exp(-(z @ truth.T - 2.5)))


def build_dataset(concepts, teacher, corpus):
    dataset = fo.Dataset(f"inficond-bench-{uuid.uuid4().hex[:8]}")
    dataset.add_samples(
        [fo.Sample(filepath=f"/bench/{i:06d}.jpg", concepts=v) for i, v in enumerate(concepts)]
    )
    # Concept vectors come from compute_concepts in real use; here they are synthetic, so the
    # run that compute_concepts would record is recorded directly.
    record_run(dataset, "concepts", CONCEPTS_METHOD, corpus_id=corpus.id, concepts=list(corpus.names))
    set_teacher_scores(dataset, teacher, [f"class_{j}" for j in range(teacher.shape[1])])
    return dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=80)
    args = parser.parse_args()
    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False

    corpus = load_corpus()
    concepts, teacher = synthetic(args.samples, len(corpus), args.classes)
    z = (concepts - concepts.mean(0)) / concepts.std(0)
    weight, bias = initial_weights(teacher, len(corpus), 0)
    lower, upper = no_bounds(weight.shape)
    fit(z[:512], teacher[:512], weight, bias, lower, upper, TrainingConfig(epochs=1))  # warm-up
    budgets = np.full(args.classes, BUDGET)
    train_s, sparse = timed(lambda: fit_to_budgets(z, teacher, weight, bias, lower, upper, TrainingConfig(), budgets),
                            repeat=3)
    dense_s, _ = timed(lambda: fit(z, teacher, weight, bias, lower, upper, TrainingConfig()), repeat=3)
    path_s, (chosen, _) = timed(lambda: class_budgets(z, teacher, weight, bias, lower, upper, TrainingConfig(), 0.5))

    dataset = build_dataset(concepts, teacher, corpus)
    try:
        train_all_s, run = timed(lambda: train_students(dataset, key="bench", overwrite=True))
        cls = run.classes[0]
        [(best, _)], [(worst, _)] = run.top_concepts(cls, 1), run.top_concepts(cls, 1, sign="negative")
        tune_s, _ = timed(lambda: run.tune(up={cls: [best]}, down={cls: [worst]}), repeat=3)
        whatif_s, _ = timed(lambda: run.what_if(cls, n=10), repeat=5)
        summary = run.performance()["summary"]
        load_s, _ = timed(lambda: load_students(dataset, "bench"), repeat=3)  # its samples, inputs checked
        delete_students(dataset, "bench")
    finally:
        dataset.delete()

    print(
        f"samples={args.samples} concepts={len(corpus)} classes={args.classes}: "
        f"fit 10 epochs at a budget of {BUDGET} concepts {train_s:.2f} s (at most {(sparse[0] != 0).sum(1).max()} "
        f"used), every concept {dense_s:.2f} s; choosing each class's budget on the path {path_s:.2f} s "
        f"(mean {chosen.mean():.1f}); train_students incl. reading, metrics, saving {train_all_s:.2f} s; "
        f"tune {tune_s:.3f} s; what-if top 10 {whatif_s * 1000:.1f} ms; load_students {load_s:.2f} s; "
        f"agreement AP {summary['agreement_ap']:.3f}"
    )
    print(
        f"dense_train_s={dense_s:.2f} path_s={path_s:.2f} path_goal_s=10 "
        f"train_s={train_s:.2f} train_goal_s=2 train_vs_paper={train_s / PAPER_TRAIN_S:.3f} "
        f"tune_s={tune_s:.3f} tune_goal_s=0.5 tune_vs_paper={tune_s / PAPER_TRAIN_S:.4f} "
        f"whatif_ms={whatif_s * 1000:.1f} whatif_goal_ms=100 load_s={load_s:.2f}"
    )


if __name__ == "__main__":
    main()
