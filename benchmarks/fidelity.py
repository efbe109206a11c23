"""Fidelity report: every stage measured against the synthetic world's truth, in one run.

A freshly seeded world the world CLIP never saw: a training split with the injected spurious
correlation (airplanes under clouds) and a held-out split without it.

1. Concepts: per-concept presence AUROC (concept vector vs truth) and pixel-level agreement of
   segment labels with the masks, on the held-out split.
2. Teacher (a CNN trained on the training split's labels) and students (distilled on the
   training split): mAP against ground truth and agreement AP with the teacher, held out.
3. A scripted tuning pass: down-tune "cloud" for "airplane", up-tune its parts; the airplane
   student's held-out AP gain against its gap to the teacher.
"""

import argparse
import logging
import tempfile
import time
import uuid

import fiftyone as fo
import numpy as np

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.corpus import packaged_corpus
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.students.registry import delete_students, train_students
from fiftyone_inficond.teacher import teacher_from_model
from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL
from fiftyone_inficond.world.dataset import load_world_splits
from fiftyone_inficond.world.fidelity import pixel_agreement, presence_auroc
from fiftyone_inficond.world.scenes import AIRPLANES_UNDER_CLOUDS, generate_scenes
from fiftyone_inficond.world.teacher_model import TRAINING_SCENES, as_fiftyone_model, train_world_teacher

# The parts that tell an airplane from the other classes ("body" is shared with cars and buses)
SPURIOUS_CLASS, SPURIOUS_CONCEPT, TRUE_PARTS = "airplane", "cloud", ["wing", "tail"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--heldout", type=int, default=300)
    parser.add_argument("--seed", type=int, default=9001)
    parser.add_argument("--checkpoint", default=WORLD_CHECKPOINT)
    args = parser.parse_args()
    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False
    started = time.time()

    corpus = packaged_corpus("world")
    clip = load_clip(WORLD_MODEL, args.checkpoint, device="cpu")
    root = tempfile.mkdtemp(prefix="inficond-world-")
    name = f"inficond-fidelity-{uuid.uuid4().hex[:8]}"
    dataset = load_world_splits(name, root, args.train, args.heldout, args.seed, context_with=AIRPLANES_UNDER_CLOUDS)
    try:
        compute_concepts(dataset, clip, corpus=corpus, batch_size=64)
        heldout = dataset.match_tags("heldout")
        vectors = np.stack(heldout.values("concepts"))
        auroc = presence_auroc(vectors, heldout.values("world_concepts"), corpus.names)
        agreement = pixel_agreement(heldout, "concepts", corpus.names)

        teacher_scenes = generate_scenes(TRAINING_SCENES, seed=args.seed + 2, context_with=AIRPLANES_UNDER_CLOUDS)
        teacher_from_model(dataset, as_fiftyone_model(train_world_teacher(teacher_scenes)), batch_size=64)
        run = train_students(dataset, key="fidelity", train_tag="train")
        performance = run.performance(split="validation")
        summary = performance["summary"]
        before, weight_before = _class_row(performance, SPURIOUS_CLASS), _spurious_weight(run)
        top_before = run.top_concepts(SPURIOUS_CLASS, n=5)
        run.tune(up={SPURIOUS_CLASS: TRUE_PARTS}, down={SPURIOUS_CLASS: [SPURIOUS_CONCEPT]}, factor=2.0)
        after = _class_row(run.performance(split="validation"), SPURIOUS_CLASS)
        weight_after = _spurious_weight(run)
        delete_students(dataset, "fidelity")
    finally:
        dataset.delete()

    values = np.array(list(auroc.values()))
    worst = sorted(auroc.items(), key=lambda kv: kv[1])[:5]
    gap = before["teacher_ap"] - before["student_ap"]
    gain = after["student_ap"] - before["student_ap"]
    print(f"held-out world: {args.heldout} images; {len(auroc)} concepts measured; {time.time() - started:.0f} s")
    print("lowest AUROC:", ", ".join(f"{c} {v:.2f}" for c, v in worst))
    print(
        f"teacher mAP {summary['teacher_ap']:.3f}; student mAP {summary['student_ap']:.3f}; "
        f"agreement AP {summary['agreement_ap']:.3f}"
    )
    for row in performance["classes"]:
        print(
            f"  {row['class']:<9} teacher AP {row['teacher_ap']:.3f}  student AP {row['student_ap']:.3f}  "
            f"agreement AP {row['agreement_ap']:.3f}"
        )
    print(
        f"{SPURIOUS_CLASS}: teacher AP {before['teacher_ap']:.3f}, student AP {before['student_ap']:.3f} -> "
        f"{after['student_ap']:.3f} after tuning"
    )
    print(f"{SPURIOUS_CLASS} student's top concepts:", ", ".join(f"{c} {w:.2f}" for c, w in top_before))
    print(f"its weight on '{SPURIOUS_CONCEPT}': {weight_before:.3f} -> {weight_after:.3f} after tuning")
    print(
        f"auroc_min={values.min():.3f} auroc_median={np.median(values):.3f} auroc_goal=0.95 "
        f"pixel_agreement={agreement:.3f} "
        f"student_vs_teacher_map={summary['student_ap'] / summary['teacher_ap']:.3f} map_goal=0.95 "
        f"agreement_ap={summary['agreement_ap']:.3f} agreement_goal=0.90 "
        f"tuning_gap_closed={(gain / gap if gap > 0 else float('nan')):.2f} tuning_goal=0.5"
    )


def _spurious_weight(run):
    return float(run.weight[run.classes.index(SPURIOUS_CLASS), run.concepts.index(SPURIOUS_CONCEPT)])


def _class_row(performance, cls):
    return next(row for row in performance["classes"] if row["class"] == cls)


if __name__ == "__main__":
    main()
