"""A run's concept vectors as the students read them, standardized (``(x - mean) / std`` per
concept), and the raw values read back through the standardization: a run holds one matrix of its
vectors, not two. Pure arrays: a matrix (or a row source) in, a matrix or an indexable view out.
"""

import numpy as np

from fiftyone_inficond.students.training import CHUNK_ROWS


def standardize(concepts, mean, std, out=None):
    """``(n, n_concepts)`` concept vectors standardized as ``(concepts - mean) / std``, chunk by chunk
    into a new float32 matrix (no full-size temporary) or into ``out`` (``concepts`` itself: in place)."""
    out = np.empty(concepts.shape, dtype=np.float32) if out is None else out
    for start in range(0, len(concepts), CHUNK_ROWS):
        out[start : start + CHUNK_ROWS] = (concepts[start : start + CHUNK_ROWS] - mean) / std
    return out


class Destandardized:
    """The concept vectors of a run read back from its standardized inputs (``inputs * std +
    mean``, float32; within a few float32 ulps of the stored values), so that a run holds one
    matrix, not two: indexed like the ``(n, n_concepts)`` array, rows and columns, with only the
    selected part computed."""

    def __init__(self, inputs, mean, std):
        self.inputs, self.mean, self.std = inputs, mean, std
        self.shape, self.dtype = inputs.shape, inputs.dtype

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, columns = key
            return self.inputs[rows, columns] * self.std[columns] + self.mean[columns]
        return self.inputs[key] * self.std + self.mean

    def __array__(self, dtype=None, copy=None):
        array = self[:]
        return array if dtype is None else array.astype(dtype)
