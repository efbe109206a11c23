"""What a panel click costs once a student run is open: 10,000 samples x 1,153 concepts x 80 classes.

Synthetic concept vectors and teacher scores (as benchmarks/students.py) with a 2/3 training
split. ``load_s`` is the one load per process (:func:`open_students`); every other figure is
the median of repeated calls on the open run, and ``reopen_ms`` what re-opening an unchanged
run costs (its freshness checks). Goal: each answer within 50 ms. The concept-location keys of
the issue (``top_patches_s``, ``add_concepts_s``) come with the stored segment embeddings.
"""

import argparse
import logging
import statistics
import time

import fiftyone as fo

from fiftyone_inficond.corpus import load_corpus
from fiftyone_inficond.students.run import delete_students, open_students, train_students

from students import build_dataset, synthetic


def median_ms(fn, repeat=7):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=80)
    args = parser.parse_args()
    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False

    corpus = load_corpus()
    concepts, teacher = synthetic(args.samples, len(corpus), args.classes)
    dataset = build_dataset(concepts, teacher, corpus)
    try:
        dataset.take(2 * args.samples // 3, seed=0).tag_samples("train")
        train_students(dataset, key="bench", train_tag="train", epochs=2)
        start = time.perf_counter()
        run = open_students(dataset, "bench")
        run.performance("validation")  # what the first paint shows
        load_s = time.perf_counter() - start
        cls = run.classes[0]
        figures = dict(
            load_s=round(load_s, 2),
            reopen_ms=median_ms(lambda: open_students(dataset, "bench")),
            performance_ms=median_ms(lambda: run.performance("validation", sort_by="ap_gap")),
            counts_ms=median_ms(lambda: run.agreement_counts("validation")),
            agreement_ms=median_ms(lambda: run.agreement(cls, "validation")),
            ranking_weight_ms=median_ms(lambda: run.top_concepts(cls, 10)),
            ranking_discrepancy_ms=median_ms(lambda: run.top_concepts(cls, 10, by="negatives")),
            whatif_ms=median_ms(lambda: run.what_if(cls, n=10)),
            history_ms=median_ms(lambda: run.history),
            revision_check_ms=median_ms(run.newest_revision),
        )
        delete_students(dataset, "bench")
    finally:
        dataset.delete()
    print(f"samples={args.samples} concepts={len(corpus)} classes={args.classes} (median of 7 calls, ms)")
    print(" ".join(f"{k}={v:.1f}" if k != "load_s" else f"{k}={v}" for k, v in figures.items()) + " goal_ms=50")


if __name__ == "__main__":
    main()
