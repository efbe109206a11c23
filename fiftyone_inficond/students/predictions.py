"""A student run's and its teacher's per-class scores as FiftyOne labels, where FiftyOne users look.

Each goes into a ``Classifications`` field of the run's samples: one ``Classification`` per class
(label and confidence, optionally the student's logit), by default only the classes it calls
positive (at the run's threshold), so that the sidebar can filter "the student says car, the
teacher does not", and every other FiftyOne tool can read them. A field is written only when it is
new or holds this plugin's earlier predictions (:func:`fiftyone_inficond.labels.require_prediction_field`):
never the ground truth, the concept vectors, the teacher's scores or anyone's labels.
"""

from collections.abc import Callable

import fiftyone as fo
import fiftyone.core.utils as fou
import numpy as np
from scipy.special import expit

from fiftyone_inficond.fiftyone_api import dataset_of
from fiftyone_inficond.labels import declare_prediction_field, require_prediction_field
from fiftyone_inficond.students.run import StudentRun

WRITE_ROWS = 1000  # samples per write: one set_values call each


def write_student_labels(run: StudentRun, field: str = "student", revision: int | None = None,
                         positives_only: bool = True, logits: bool = False, progress: bool | Callable | None = None
                         ) -> int:
    """Writes the students' probabilities of ``revision`` (the run's own by default) on the run's
    samples into ``field``; with ``logits``, each label also keeps its ``logit``.

    Returns:
        how many samples were labelled
    """
    field = require_prediction_field(run.samples, field)
    values = run.revision_logits(revision)
    return _write(run, field, expit(values), values if logits else None, positives_only, progress)


def write_teacher_labels(run: StudentRun, field: str = "teacher_labels", positives_only: bool = True,
                         progress: bool | Callable | None = None) -> int:
    """Writes the teacher's probabilities the run learnt from on its samples into ``field``.

    Returns:
        how many samples were labelled
    """
    field = require_prediction_field(run.samples, field, suggestion="teacher_labels")
    return _write(run, field, run.data.teacher, None, positives_only, progress)


def _write(run, field, probabilities, logits, positives_only, progress):
    """``(n, k)`` ``probabilities`` (and ``logits``) of the run's samples as labels in ``field``."""
    declare_prediction_field(run.samples, field)
    dataset, ids = dataset_of(run.samples), run.ids
    with fou.ProgressBar(total=len(ids), progress=progress) as bar:
        for start in range(0, len(ids), WRITE_ROWS):
            rows = slice(start, start + WRITE_ROWS)
            labels = _labels(run.classes, np.asarray(probabilities[rows]), None if logits is None else logits[rows],
                             run.threshold, positives_only)
            # On the dataset: a view's label filters would write only the labels they let through.
            dataset.select(ids[rows], ordered=True).set_values(field, labels)
            bar.update(count=len(labels))
    return len(ids)


def _labels(classes, probabilities, logits, threshold, positives_only):
    """One ``Classifications`` per row of ``(m, k)`` ``probabilities``."""
    out = []
    for i, row in enumerate(probabilities.tolist()):
        items = []
        for j, p in enumerate(row):
            if positives_only and p < threshold:
                continue
            label = fo.Classification(label=classes[j], confidence=p)
            if logits is not None:
                label["logit"] = float(logits[i, j])
            items.append(label)
        out.append(fo.Classifications(classifications=items))
    return out
