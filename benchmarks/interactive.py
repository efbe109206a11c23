"""What a panel click costs once a run is open.

Students: 10,000 samples x 1,153 concepts x 80 classes, synthetic concept vectors and teacher
scores (as benchmarks/students.py) with a 2/3 training split. ``load_s`` is the one load per
process (:func:`open_students`); every other figure is the median of repeated calls on the
open run, and ``reopen_ms`` what re-opening an unchanged run costs (its freshness checks).
Goal: each answer within 50 ms.

Concepts: 10,000 generated world scenes, their concepts extracted by the world CLIP through
``compute_concepts`` (real stored segment embeddings); ``index_load_s`` reads every segment
embedding once per process, ``top_patches_s`` then finds one concept's best patches over all
of them (goal 0.5 s), ``add_concepts_s`` adds 10 concepts to every image's vector (goal 2 s;
their text encoded once, the index already open).
"""

import argparse
import logging

import fiftyone as fo
from common import world_with_concepts
from students import build_dataset, synthetic
from timing import median_ms, timed

from fiftyone_inficond import locate
from fiftyone_inficond.corpus import load_corpus, packaged_corpus
from fiftyone_inficond.new_concepts import add_concepts
from fiftyone_inficond.students.registry import delete_students, open_students, train_students

NEW_CONCEPTS = ["propeller", "antenna", "flag", "fence", "tree", "lamp", "bridge", "tower", "ladder", "cabin"]


def student_figures(n_samples, n_classes):
    corpus = load_corpus()
    concepts, teacher = synthetic(n_samples, len(corpus), n_classes)
    dataset = build_dataset(concepts, teacher, corpus)
    try:
        dataset.take(2 * n_samples // 3, seed=0).tag_samples("train")
        train_students(dataset, key="bench", train_tag="train", epochs=2)

        def open_and_measure():
            run = open_students(dataset, "bench")
            run.performance("validation")  # what the first paint shows
            return run

        load_s, run = timed(open_and_measure)
        cls = run.classes[0]
        figures = dict(
            load_s=load_s,
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
    return figures


def concept_figures(n_images):
    with world_with_concepts(n_images, packaged_corpus("world")) as dataset:
        index_load_s, index = timed(lambda: locate.open_index(dataset))
        top_s = median_ms(lambda: locate.top_patches(dataset, "wing", n=20), repeat=5) / 1000
        add_s, _ = timed(lambda: add_concepts(dataset, NEW_CONCEPTS))
        return dict(index_load_s=index_load_s, top_patches_s=top_s, add_concepts_s=add_s,
                    segments=len(index.segment), embed_dim=index.embeddings.shape[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False

    students = student_figures(args.samples, args.classes)
    concepts = concept_figures(args.images)
    print(f"students: samples={args.samples} concepts=1153 classes={args.classes} (median of 7 calls); "
          f"concepts: {args.images} world images, {concepts['segments']} segments x {concepts['embed_dim']} dims")
    print(
        f"load_s={students['load_s']:.2f} "
        + " ".join(f"{k}={v:.1f}" for k, v in students.items() if k.endswith("_ms"))
        + f" goal_ms=50 index_load_s={concepts['index_load_s']:.2f} top_patches_s={concepts['top_patches_s']:.3f}"
        + f" top_patches_goal_s=0.5 add_concepts_s={concepts['add_concepts_s']:.2f} add_concepts_goal_s=2"
    )


if __name__ == "__main__":
    main()
