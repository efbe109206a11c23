"""Parameter checks at the library boundary, so a bad value is refused before anything is written.

Every check returns the value in its canonical type (a Python ``int``, ``float``, ``str`` or
list) or raises :class:`fiftyone_inficond.errors.InvalidRequest` naming the parameter in the
user's words, the allowed range and the value given. ``bool`` is never a number here.
"""

import math
import numbers

from fiftyone_inficond.errors import InvalidRequest


def whole_number(value, label, low, high=None):
    """An ``int`` in ``[low, high]``: ``-1``, ``1.5``, ``None`` and ``True`` are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidRequest(f"{_capital(label)} must be a whole number{_range(low, high)}; got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise InvalidRequest(f"{_capital(label)} must be a whole number{_range(low, high)}; got {value}")
    return value


def optional_whole_number(value, label, low, high=None):
    return None if value is None else whole_number(value, label, low, high)


def number(value, label, low, high, low_open=False, high_open=False):
    """A finite ``float`` between ``low`` and ``high`` (``*_open``: that end excluded)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    value_float = float(value) if ok else math.nan
    ok = ok and math.isfinite(value_float)
    ok = ok and (value_float > low if low_open else value_float >= low)
    ok = ok and (value_float < high if high_open else value_float <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise InvalidRequest(f"{_capital(label)} must be a number in {left}{low:g}, {high:g}{right}; got {value!r}")
    return value_float


def name(value, label):
    """A non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{_capital(label)} must be a non-empty name; got {value!r}")
    return value


def flag(value, label):
    """``True`` or ``False``, nothing else (a string "no" would be true)."""
    if not isinstance(value, bool):
        raise InvalidRequest(f"{_capital(label)} is True or False; got {value!r}")
    return value


MAX_NOTE = 200  # characters: a line in the history, not a document


def note(value):
    """A revision's note: one line of at most :data:`MAX_NOTE` characters, stripped; ``None`` or
    blank is no note (``""``)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"A note is text, like 'removed the cloud shortcut'; got {value!r}")
    value = " ".join(value.split())
    if len(value) > MAX_NOTE:
        raise InvalidRequest(f"A note is at most {MAX_NOTE} characters; this one has {len(value)}: shorten it")
    return value


def run_key(value):
    """A key FiftyOne accepts for a run: a Python identifier such as ``students`` or ``v2``."""
    if not isinstance(value, str) or not value.isidentifier():
        raise InvalidRequest(
            f"A run key is a single word of letters, digits and underscores, not starting with a "
            f"digit (like 'students_v2'); got {value!r}"
        )
    return value


def _range(low, high):
    return f" of at least {low:,}" if high is None else f" from {low:,} to {high:,}"


def _capital(text):
    return text[:1].upper() + text[1:]


def field_name(value, label):
    """A name FiftyOne accepts for a sample field that is also a run key (a Python identifier
    not starting with ``_``, which FiftyOne reserves)."""
    if not isinstance(value, str) or not value.isidentifier() or value.startswith("_"):
        raise InvalidRequest(
            f"{_capital(label)} must be a single word of letters, digits and underscores, starting "
            f"with a letter (like 'concepts'); got {value!r}"
        )
    return value
