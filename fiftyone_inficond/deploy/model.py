"""An export as a FiftyOne model, so ``dataset.apply_model(load_student_model(folder), "student")``
predicts like every other model, and the students explain each prediction with their concepts."""

import fiftyone as fo
import fiftyone.core.models as fom
import numpy as np
import open_clip
import torch
from PIL import Image

from fiftyone_inficond.deploy.export import load_export
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import exact_count
from fiftyone_inficond.validation import field_name, whole_number


class StudentModel(fom.Model):
    """The students of an export over images: ``Classifications`` with each class's probability.

    A class the students call positive (probability at the run's threshold or above) also carries
    ``top_concepts`` and ``top_contributions``: the ``explain`` kept concepts that raise its logit
    most in this image (standardized concept value × weight).

    Args:
        export: a :class:`fiftyone_inficond.deploy.export.StudentExport`
        explain: how many concepts explain each positive class (0: none)
        positives_only: label only the classes the students call positive (what the grid should
            show); ``False`` labels every class (e.g. for precision-recall curves)
    """

    def __init__(self, export, explain=3, positives_only=True):
        self.export = export
        self.explain = whole_number(explain, "the number of explaining concepts", 0, 100)
        self.positives_only = bool(positives_only)
        spec = export.manifest["preprocess"]
        self._transforms = open_clip.image_transform(
            tuple(spec["size"]), is_train=False, mean=spec["mean"], std=spec["std"],
            resize_mode=spec["resize_mode"], interpolation=spec["interpolation"],
        )
        self._preprocess = True
        self._concepts = np.array(export.kept_concepts, dtype=object)

    @property
    def media_type(self):
        return "image"

    @property
    def ragged_batches(self):
        return False

    @property
    def transforms(self):
        return self._transforms

    @property
    def preprocess(self):
        return self._preprocess

    @preprocess.setter
    def preprocess(self, value):
        self._preprocess = value

    def predict(self, arg):
        return self.predict_all([arg])[0]

    def predict_all(self, args):
        """Labels of images (``HxWx3`` uint8 arrays or PIL images, or preprocessed tensors when
        :attr:`preprocess` is off)."""
        images = torch.stack([self._transforms(_pil(a)) for a in args]) if self._preprocess else torch.stack(list(args))
        probabilities, vectors = self.export.predict(images)
        contributions = self.export.contributions(vectors) if self.explain else None
        return [self._labels(probabilities[i], None if contributions is None else contributions[i])
                for i in range(len(probabilities))]

    def _labels(self, probabilities, contributions):
        threshold = self.export.manifest["threshold"]
        labels = []
        for j, (cls, p) in enumerate(zip(self.export.classes, probabilities.tolist())):
            if self.positives_only and p < threshold:
                continue
            label = fo.Classification(label=cls, confidence=p)
            if contributions is not None and p >= threshold:
                top = np.argsort(-contributions[j])[: self.explain]
                top = top[contributions[j][top] > 0]
                label["top_concepts"] = self._concepts[top].tolist()
                label["top_contributions"] = np.round(contributions[j][top], 4).tolist()
            labels.append(label)
        return fo.Classifications(classifications=labels)


def _pil(image):
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image)).convert("RGB")


def load_student_model(directory, explain=3, positives_only=True):
    """The export in ``directory`` (checked, see :func:`fiftyone_inficond.deploy.export.load_export`)
    as a :class:`StudentModel`."""
    return StudentModel(load_export(directory), explain, positives_only)


def apply_export(samples, directory, label_field="student", explain=3, positives_only=True, batch_size=32,
                 progress=None):
    """Writes the export's predictions on ``samples`` into ``label_field`` (see :class:`StudentModel`);
    returns how many samples it labelled."""
    label_field = field_name(label_field, "the label field")
    batch_size = whole_number(batch_size, "the batch size", 1, 4096)
    model = load_student_model(directory, explain, positives_only)
    if exact_count(samples) == 0:
        raise InvalidRequest("The view is empty: select at least one sample to predict")
    samples.apply_model(model, label_field=label_field, batch_size=batch_size, progress=progress)
    return exact_count(samples.exists(label_field))
