"""Why one image: what each concept adds to a class's logit for it, largest first.

A student's logit for an image is its bias plus, per concept, the concept's standardized value
times its weight. Those terms are the whole explanation (the model is linear): listed largest
first, with the rest summed, they add up to the logit exactly, so a user reads *why* the student
says what it says about this image, and which concept to 👍 or 👎 there.

:func:`waterfall` works on arrays; :func:`explain_sample` reads one sample's row of a run.
"""

import numpy as np
from scipy.special import expit

from fiftyone_inficond.errors import UnknownName
from fiftyone_inficond.validation import whole_number

N_SHOWN = 8


def waterfall(inputs, weight, bias, names, n=N_SHOWN):
    """One class's logit for one sample, term by term.

    Args:
        inputs: ``(d,)`` the sample's standardized concept vector
        weight: ``(d,)`` the class's weights
        bias: the class's bias
        names: ``d`` concept names
        n: how many terms to name (the largest by absolute value; zero terms never)

    Returns:
        ``{"bias", "terms": [{"concept", "value", "weight", "contribution"}] largest first,
        "others": the sum of the remaining terms, "n_others": how many nonzero terms that is,
        "logit": bias + every term}``; ``bias + sum(terms) + others == logit`` up to rounding
    """
    contributions = np.asarray(inputs, dtype=np.float64) * np.asarray(weight, dtype=np.float64)
    used = np.flatnonzero(contributions)
    order = used[np.argsort(-np.abs(contributions[used]), kind="stable")]
    shown, rest = order[:n], order[n:]
    return {
        "bias": float(bias),
        "terms": [{"concept": names[j], "value": float(inputs[j]), "weight": float(weight[j]),
                   "contribution": float(contributions[j])} for j in shown],
        "others": float(contributions[rest].sum()),
        "n_others": len(rest),
        "logit": float(bias + contributions.sum()),
    }


def explain_sample(run, sample_id, cls, n=N_SHOWN):
    """Why ``run``'s students say what they say about one of its samples.

    Returns:
        ``{"sample_id", "classes": [{"class", "student", "teacher"}] by the student's probability,
        highest first, "class": cls, "waterfall": :func:`waterfall` of ``cls``}``
    """
    n = whole_number(n, "the number of concepts to name", 1, len(run.concepts))
    rows = np.flatnonzero(np.asarray(run.ids) == sample_id)
    if not len(rows):
        raise UnknownName(f"This image is not one of the {len(run.ids):,} samples student run '{run.key}' was "
                          "trained and measured on: pick one of those, or train the run again with it")
    if cls not in run.classes:
        raise UnknownName(f"Class '{cls}' is not a class of student run '{run.key}': pick one of its classes")
    row, column = int(rows[0]), run.classes.index(cls)
    logits = run.logits(rows=[row])[0]
    student, teacher = expit(logits), run.data.teacher[row]
    order = np.argsort(-student, kind="stable")
    return {
        "sample_id": sample_id,
        "classes": [{"class": run.classes[j], "student": float(student[j]), "teacher": float(teacher[j])}
                    for j in order],
        "class": cls,
        "waterfall": waterfall(run.inputs[row], run.weight[column], run.bias[column], run.concepts, n),
    }
