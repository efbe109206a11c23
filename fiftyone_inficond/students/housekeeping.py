"""Housekeeping after every train and delete: history no run reaches any more (its dataset or run
deleted, or never registered after a crash) and the disk caches of its runs, then the caches of
trainings killed on this machine. Never the caller's failure: what is left is done next time.
"""

import logging

from pymongo.errors import PyMongoError

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.students import run_cache, store

logger = logging.getLogger(__name__)


def purge_orphans():
    """History no run reaches, and the disk caches of its runs (e.g. those of a deleted dataset); then
    the caches of trainings killed on this machine."""
    try:
        for cache in store.purge_orphans():
            run_cache.remove_cache(cache)
        run_cache.sweep_caches(lambda: store.history_uids() | {uid for _, uid in fiftyone_api.run_uids(
            store.STUDENTS_METHOD)})
    except PyMongoError as error:  # housekeeping: the next train or delete does it
        logger.warning("Old student history and caches were not cleaned up (%s)", type(error).__name__)
