"""Turning up/down-tuning instructions into weight bounds.

For a tuned concept with current weight ``w`` in a class whose mean absolute nonzero weight
is ``s``, and a factor ``x > 1``, the step is ``(x - 1) * max(|w|, s)``:

- **up-tune**: lower bound ``w + step``. A positive weight grows to ``x * w``; a negative
  one moves towards (or past) zero; a zero weight (a concept the student does not use)
  becomes ``(x - 1) * s``: it enters the student. Either way the concept ends up supporting
  its class more than before.
- **down-tune**: the student relies on the concept less, whichever its sign: the weight is
  bounded between 0 and ``sign(w) * max(|w| - step, 0)``. A positive weight shrinks to
  ``w - step`` (to 0 from ``x >= 2``), a negative one rises to ``w + step`` the same way, and
  neither flips sign (a 👎'd concept never becomes evidence the other way). A concept the
  student does not use is kept out of it (both bounds 0): a 👎 never makes a student start
  using a concept.

Using ``max(|w|, s)`` keeps a zero or tiny weight from yielding a bound that changes nothing.
Bounds accumulate over iterations: a new up-tune raises (never lowers) a concept's lower
bound; a down-tune bounds the weight from the current one, which already lies within the
earlier bounds, so repeated 👎 keep shrinking it. Tuning a concept the opposite way releases
its earlier opposite bound, so the newest instruction on a concept always wins and the
bounds stay feasible. Retraining starts from the weights clamped into the new bounds.
"""

from dataclasses import dataclass

import numpy as np

from fiftyone_inficond.errors import InvalidRequest

DIRECTIONS = ("up", "down")
MAX_FACTOR = 100.0  # beyond this a bound is meaningless and float32 weights overflow


@dataclass(frozen=True)
class Instruction:
    """Up- or down-tune concept ``concept`` (a column) of class ``cls`` (a row); ``via``: the
    concept the user named, when this one is tuned as its synonym (``None``: named itself)."""

    cls: int
    concept: int
    direction: str
    via: int = None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise InvalidRequest(f"A tuning direction is 'up' or 'down'; got '{self.direction}'")


def apply_instructions(weight, lower, upper, instructions, factor):
    """New ``(lower, upper)`` bounds and start weights after ``instructions``.

    Args:
        weight: ``(k, n_concepts)`` current weights
        lower, upper: ``(k, n_concepts)`` current bounds (``-inf``/``inf`` where none)
        instructions: :class:`Instruction` s
        factor: ``x > 1``, how strongly to tune

    Returns:
        ``(lower, upper, start_weight)``, new arrays
    """
    if not 1 < factor <= MAX_FACTOR:
        raise InvalidRequest(f"The tuning factor must be greater than 1 and at most {MAX_FACTOR:g}; got {factor}")
    lower, upper = lower.copy(), upper.copy()
    scale = nonzero_scale(weight)
    for item in instructions:
        w = weight[item.cls, item.concept]
        step = (factor - 1) * max(abs(w), scale[item.cls], 1e-6)
        if item.direction == "up":
            lower[item.cls, item.concept] = max(lower[item.cls, item.concept], w + step)
            upper[item.cls, item.concept] = np.inf
        else:  # |weight| shrinks by the step, towards 0 and never past it
            kept = np.sign(w) * max(abs(w) - step, 0.0)
            lower[item.cls, item.concept], upper[item.cls, item.concept] = min(kept, 0.0), max(kept, 0.0)
    return lower, upper, np.clip(weight, lower, upper)


def nonzero_scale(weight):
    """``(k,)`` mean absolute nonzero weight of each student (0 where it uses none): a sparse
    student's typical weight, which zeros outside its budget would shrink."""
    used = (weight != 0).sum(axis=1)
    return np.abs(weight).sum(axis=1) / np.maximum(used, 1)


def no_bounds(shape):
    """Lower and upper bound arrays that constrain nothing."""
    return np.full(shape, -np.inf, np.float32), np.full(shape, np.inf, np.float32)
