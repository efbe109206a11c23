"""The bulk array codec keeps FiftyOne's stored format: what one writes, the other reads."""

import fiftyone.core.utils as fou
import numpy as np
import pytest

from fiftyone_inficond.fiftyone_api import decode_array, encode_array

ARRAYS = [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.arange(6, dtype=np.uint16).reshape(2, 3) * 9000,
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.zeros((0, 5), np.float16),
    np.arange(3, dtype=np.int64),
    np.random.default_rng(0).random((16, 128)).astype(np.float16),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_fiftyone_reads_what_is_written_here_and_the_other_way_round(array):
    ours = fou.deserialize_numpy_array(encode_array(array))
    theirs = decode_array(fou.serialize_numpy_array(array))
    for decoded in (ours, theirs):
        assert decoded.dtype == array.dtype and decoded.shape == array.shape
        np.testing.assert_array_equal(decoded, array)


def test_a_missing_array_stays_missing():
    assert decode_array(None) is None
