"""One way to time a call, for every benchmark. A module of its own, importing nothing else, so
that a child process measuring its peak memory imports nothing with it."""

import statistics
import time


def timed(fn, repeat=1):
    """``(seconds, result)`` of calling ``fn()``: the fastest of ``repeat`` calls, the last result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def median_ms(fn, repeat=7):
    """The median time of ``repeat`` calls of ``fn()``, in milliseconds."""
    return 1000 * statistics.median(timed(fn)[0] for _ in range(repeat))
