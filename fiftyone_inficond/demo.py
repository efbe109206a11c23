"""The demos: the synthetic world (default) and coco128.

``make demo`` builds ``inficond-world``: generated scenes with per-pixel concept truth, a CNN
teacher trained with a spurious correlation (airplanes under clouds), concepts from the world CLIP
and students. ``make demo-coco`` builds ``inficond-coco128``: 128 real COCO images, the real
YOLOX-Nano teacher and concepts from a (weightless, unless you give one) open_clip model.
Open either with ``fiftyone app launch <name>``.
"""

import argparse
import os

import fiftyone as fo

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.corpus import packaged_corpus
from fiftyone_inficond.datasets import load_yolo_multilabel
from fiftyone_inficond.extraction import DEFAULT_MODEL, compute_concepts
from fiftyone_inficond.students.run import list_student_runs, load_students, train_students
from fiftyone_inficond.teacher import teacher_from_file, teacher_from_model

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "assets", "coco128-train")
WORLD_IMAGES = os.path.join(fo.config.default_dataset_dir, "inficond-world")  # persists like the dataset


def build_world(name, n=300, seed=1):
    """(Re)builds the world demo: 2/3 training split with the spurious correlation, 1/3 held out."""
    from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL
    from fiftyone_inficond.world.dataset import load_world_splits
    from fiftyone_inficond.world.scenes import generate_scenes
    from fiftyone_inficond.world.teacher_model import as_fiftyone_model, train_world_teacher

    spurious = {"airplane": 0.95}
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
    else:
        dataset = load_world_splits(name, WORLD_IMAGES, 2 * n // 3, n // 3, seed, cloud_with=spurious)
    if not dataset.has_field("teacher"):
        teacher = train_world_teacher(generate_scenes(1000, seed=seed + 2, cloud_with=spurious))
        teacher_from_model(dataset, as_fiftyone_model(teacher))
    clip = load_clip(WORLD_MODEL, WORLD_CHECKPOINT)
    result = compute_concepts(dataset, clip, corpus=packaged_corpus("world"), progress=True)
    if "students" not in list_student_runs(dataset):
        train_students(dataset, key="students", train_tag="train")
    return dataset, result


def build_coco128(data, name, model, pretrained):
    """(Re)builds the coco128 demo; concept extraction resumes if interrupted."""
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
    else:
        dataset = load_yolo_multilabel(data, name)
    if not dataset.has_field("teacher"):
        teacher_from_file(dataset, os.path.join(data, "teacher_yolox_nano.json"))
    result = compute_concepts(dataset, model=model, pretrained=pretrained, progress=True)
    if "students" not in list_student_runs(dataset):
        train_students(dataset, key="students")
    return dataset, result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("demo", nargs="?", choices=("world", "coco128"), default="world")
    parser.add_argument("--data", default=os.path.normpath(DEFAULT_DATA), help="coco128 folder")
    parser.add_argument("--name", help="dataset name (inficond-world / inficond-coco128)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="coco128: open_clip model")
    parser.add_argument("--pretrained", default=None, help="coco128: a pretrained tag or checkpoint path")
    args = parser.parse_args()
    if args.demo == "world":
        dataset, result = build_world(args.name or "inficond-world")
    else:
        dataset, result = build_coco128(args.data, args.name or "inficond-coco128", args.model, args.pretrained)
    print(dataset)
    print(f"concepts: {result.computed} computed, {result.already_done} already done, {len(result.failed)} unreadable")
    run = load_students(dataset, "students")
    split = "validation" if run.config["train_tag"] else "all"
    summary = run.performance(split=split)["summary"]
    print(f"students ({split}):", ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if v is not None))
    print(f"top concepts of '{run.classes[0]}':", ", ".join(name for name, _ in run.top_concepts(run.classes[0], 5)))


if __name__ == "__main__":
    main()
