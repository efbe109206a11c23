"""An export as a FiftyOne model, so ``dataset.apply_model(load_student_model(folder), "student")``
predicts like every other model, and the students explain each prediction with their concepts.

:func:`apply_export` predicts with its own loop rather than ``apply_model``: it checks the label
field before writing (predictions never replace the ground truth, concepts, teacher scores or
anyone's labels, see :func:`fiftyone_inficond.labels.require_prediction_field`), and decodes
images as concept extraction does, one at a time, so that an unreadable image leaves its sample
unlabelled instead of ``apply_model`` skipping its whole batch.
"""

import logging

import fiftyone as fo
import fiftyone.core.models as fom
import fiftyone.core.utils as fou
import numpy as np
import open_clip
import torch
from PIL import Image

from fiftyone_inficond.crashpoints import crashpoint
from fiftyone_inficond.deploy.loading import load_export
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import dataset_of, exact_count, require_own_samples
from fiftyone_inficond.images import image_batches
from fiftyone_inficond.labels import (
    begin_predictions,
    declare_prediction_field,
    end_predictions,
    require_prediction_field,
)
from fiftyone_inficond.validation import whole_number

logger = logging.getLogger(__name__)


class StudentModel(fom.Model):
    """The students of an export over images: ``Classifications`` with each class's probability.

    A class the students call positive (probability at the run's threshold or above) also carries
    ``top_concepts`` and ``top_contributions``: the ``explain`` kept concepts that raise its logit
    most in this image (standardized concept value × weight).

    Args:
        export: a :class:`fiftyone_inficond.deploy.loading.StudentExport`
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
        return self.label_images(images)

    def label_images(self, images):
        """Labels of a ``(batch, 3, H, W)`` tensor of images preprocessed by :attr:`transforms`."""
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


def _marked(labels, export):
    """``labels`` naming the export (manifest digest) that wrote them; ``None`` stays ``None``."""
    if labels is not None:
        labels["export"] = export
    return labels


def _pil(image):
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image)).convert("RGB")


def load_student_model(directory, explain=3, positives_only=True):
    """The export in ``directory`` (checked, see :func:`fiftyone_inficond.deploy.loading.load_export`)
    as a :class:`StudentModel`."""
    return StudentModel(load_export(directory), explain, positives_only)


def apply_export(samples, directory, label_field="student", explain=3, positives_only=True, batch_size=32,
                 progress=None):
    """Writes the export's predictions on ``samples`` into ``label_field`` (see :class:`StudentModel`):
    a new field, or one that earlier predictions wrote; returns how many samples it labelled.

    A sample whose image cannot be read is left unlabelled (``None``, also where an earlier call
    labelled it), and a warning says how many were; the others are labelled all the same. Each
    ``Classifications`` names the export that wrote it (``export``: its manifest digest), and while
    a write lasts the field's info names it too, so a process killed midway leaves a recorded mix
    (:func:`fiftyone_inficond.labels.unfinished_predictions`), which applying again finishes.

    Raises:
        InvalidRequest: ``label_field`` holds something else (the refusal names a field to use),
            the view is empty, or the export is unreadable; then nothing is written
    """
    label_field = require_prediction_field(samples, label_field)
    batch_size = whole_number(batch_size, "the batch size", 1, 4096)
    model = load_student_model(directory, explain, positives_only)
    require_own_samples(samples, "predictions")
    if exact_count(samples) == 0:
        raise InvalidRequest("The view is empty: select at least one sample to predict")
    declare_prediction_field(samples, label_field)
    export = model.export.manifest["digest"]
    unfinished = begin_predictions(samples, label_field, export)
    if unfinished is not None:
        logger.warning("An earlier write of predictions into '%s' did not finish (export %s): every sample of "
                       "this view is written now", label_field, unfinished[:12])
    ids, paths = samples.values(["id", "filepath"])
    dataset, unreadable = dataset_of(samples), {}
    with fou.ProgressBar(total=len(ids), progress=progress) as pb:
        for indices, images, failures in image_batches(paths, model.transforms, batch_size):
            unreadable.update({ids[i]: f"{paths[i]} ({error})" for i, error in failures.items()})
            labels = dict(zip(indices, model.label_images(images))) if images is not None else {}
            batch = sorted([*indices, *failures])
            # On the dataset: a view's label filters would write only the labels they let through.
            batch_view = dataset.select([ids[i] for i in batch], ordered=True)
            batch_view.set_values(label_field, [_marked(labels.get(i), export) for i in batch])
            crashpoint("apply:batch-written")
            pb.update(count=len(batch))
    end_predictions(samples, label_field)
    if unreadable:
        logger.warning("%d of %d images could not be read, so their samples were left unlabelled in '%s'; "
                       "the first: %s", len(unreadable), len(ids), label_field, next(iter(unreadable.values())))
    return len(ids) - len(unreadable)
