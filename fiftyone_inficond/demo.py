"""The demo: coco128 with ground truth, the YOLOX-Nano teacher, concept vectors and students.

Run ``make demo`` (or ``python -m fiftyone_inficond.demo``), then open the dataset in the
App with ``fiftyone app launch inficond-coco128``.
"""

import argparse
import os

import fiftyone as fo

from fiftyone_inficond.datasets import load_yolo_multilabel
from fiftyone_inficond.extraction import DEFAULT_MODEL, compute_concepts
from fiftyone_inficond.students.run import list_student_runs, load_students, train_students
from fiftyone_inficond.teacher import teacher_from_file

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "assets", "coco128-train")


def build_coco128(data, name, model, pretrained):
    """(Re)builds the demo dataset; concept extraction resumes if interrupted."""
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
    parser.add_argument("--data", default=os.path.normpath(DEFAULT_DATA))
    parser.add_argument("--name", default="inficond-coco128")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--pretrained", default=None, help="a pretrained tag or checkpoint path")
    args = parser.parse_args()
    dataset, result = build_coco128(args.data, args.name, args.model, args.pretrained)
    print(dataset)
    print(
        f"concepts: {result.computed} computed, {result.already_done} already done, "
        f"{len(result.failed)} unreadable; teacher classes: "
        f"{len(dataset.get_run_info('teacher').config.classes)}"
    )
    summary = load_students(dataset, "students").performance()["summary"]
    print("students:", ", ".join(f"{name} {value:.3f}" for name, value in summary.items()))


if __name__ == "__main__":
    main()
