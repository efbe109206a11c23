"""What notices a hand edit of a run's inputs: sums of its concept vectors and teacher scores,
recorded when it is trained and compared when it loads (a run in memory reads its inputs from the
dataset each time it loads). The sums are also kept per bucket of rows, so that the samples a
deleted one did not share a bucket with are still checked once samples were deleted.

Pure array functions: matrices in, JSON-safe sums out.
"""

import numpy as np

VALUE_BUCKETS = 1024  # rows checked together once samples were deleted (row index modulo this)


def values_fingerprint(concepts, teacher, rows=None):
    """Sums that change when any of a run's concept vectors or teacher scores is edited: per
    class the teacher scores' sum, the concept vectors' sum and sum of squares (float64), and the
    same three per bucket of rows (``rows``: each row's index in the run, by default its position;
    bucket = index modulo :data:`VALUE_BUCKETS`), which still check the rows of the buckets no deleted
    sample was in. Cheap beside the read that gives the matrices, and the same for the same values
    in the same order."""
    concepts64 = concepts.astype(np.float64, copy=False)
    rows = np.arange(len(concepts)) if rows is None else np.asarray(rows)
    per_row = (concepts64.sum(axis=1), np.square(concepts64).sum(axis=1), teacher.sum(axis=1, dtype=np.float64))
    return {
        "concepts": [float(per_row[0].sum()), float(per_row[1].sum())],
        "teacher": teacher.sum(axis=0, dtype=np.float64).tolist(),
        "buckets": [np.bincount(rows % VALUE_BUCKETS, weights=sums, minlength=VALUE_BUCKETS).tolist()
                    for sums in per_row],
    }


def same_values(recorded, now, missing):
    """Whether the values ``now`` (of the rows present) are those ``recorded`` at training, ``missing``
    the indices of the run's rows deleted since. ``None``: a run recorded before buckets, with rows
    missing, cannot tell."""
    if len(missing) == 0:
        return all(np.allclose(recorded[name], now[name], rtol=1e-12, atol=0) for name in ("concepts", "teacher"))
    if "buckets" not in recorded:
        return None
    whole = np.ones(VALUE_BUCKETS, dtype=bool)
    whole[np.asarray(missing) % VALUE_BUCKETS] = False
    return all(np.allclose(np.asarray(then)[whole], np.asarray(sums)[whole], rtol=1e-12, atol=1e-12)
               for then, sums in zip(recorded["buckets"], now["buckets"]))
