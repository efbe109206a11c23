"""Image datasets with multi-label ground truth, loaded into FiftyOne."""

import glob
import os

import fiftyone as fo

from fiftyone_inficond.errors import InvalidRequest


def read_lines(path):
    """Non-blank stripped lines of a text file."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def yolo_image_classes(label_path, classes):
    """The class names present in a YOLO label file (``class_id cx cy w h`` per line)."""
    if not os.path.isfile(label_path):
        return []
    ids = sorted({int(line.split()[0]) for line in read_lines(label_path)})
    return [classes[i] for i in ids]


def load_yolo_multilabel(root, name, label_field="ground_truth", overwrite=False):
    """Loads ``root/images`` with multi-label ground truth from YOLO ``root/labels``.

    ``root/classes.txt`` names the class ids. Each image's ``label_field`` is a
    ``Classifications`` of the classes its label file mentions. The dataset is persistent.
    """
    classes = read_lines(os.path.join(root, "classes.txt"))
    paths = sorted(glob.glob(os.path.join(root, "images", "*")))
    if not paths:
        raise InvalidRequest(f"No images found in '{os.path.join(root, 'images')}'")
    dataset = fo.Dataset(name, overwrite=overwrite, persistent=True)
    samples = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        present = yolo_image_classes(os.path.join(root, "labels", stem + ".txt"), classes)
        labels = [fo.Classification(label=c) for c in present]
        samples.append(fo.Sample(filepath=path, **{label_field: fo.Classifications(classifications=labels)}))
    dataset.add_samples(samples)
    dataset.default_classes = classes
    dataset.save()
    return dataset
