"""Leases in the database: of two clients changing the same thing at the same moment, one wins.

FiftyOne registers a run by reading the dataset's runs, then writing: two clients that read at
the same moment both write (two records for one key, one run lost without a word). And concept
extraction writes vectors of the width it started with while an addition of concepts rewrites
every vector wider. A lease is a document per resource (``"<dataset id>/<resource>"``) changed
only by single-document conditional updates, which MongoDB applies one at a time:

- an **exclusive** lease (creating a run key, adding concepts to a field) is won by one client;
- **shared** leases (workers extracting concepts into one field, shard by shard) coexist, but
  never with an exclusive one: a worker renews its lease before each batch it writes and stops
  when it cannot.

A lease is released on the way out, exceptions and interrupts included; when the database does not
answer then, within a few seconds, the process releases it on its next take. One whose holder was
killed is dropped at once when that process ran on this machine (its pid is gone), and lapses
``GRACE`` after it was last taken or renewed otherwise.
"""

import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta, timezone

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.students.store import current_user

COLLECTION = "inficond_leases"
GRACE = timedelta(minutes=30)
RELEASE_WAIT = 5  # seconds a release on the way out waits for the database
_UNRELEASED = []  # this process's leases whose release failed, released on its next take

logger = logging.getLogger(__name__)


class LeaseHeld(Exception):
    """Raised by :func:`exclusive` and :func:`shared` when another client holds the resource:
    ``holder`` is its lease (``user``, ``time`` in UTC, ``mode``), for the caller's own message."""

    def __init__(self, holder):
        super().__init__(holder)
        self.holder = holder


class Lease:
    """A lease taken: ``renew()`` keeps it, or raises :class:`LeaseHeld` if it lapsed and was taken."""

    def __init__(self, collection, lease_id, token, mode):
        self._collection, self._id, self.token, self._mode = collection, lease_id, token, mode

    def renew(self):
        now = _now()
        if self._mode == "exclusive":
            found = self._collection.find_one_and_update(
                {"_id": self._id, "exclusive.token": self.token}, {"$set": {"exclusive.time": now}})
        else:
            found = self._collection.find_one_and_update(
                {"_id": self._id, "shared.token": self.token, **_no_exclusive(now)},
                {"$set": {"shared.$.time": now}})
        if found is None:
            raise LeaseHeld(_holder(self._collection.find_one({"_id": self._id})))

    def _release(self):
        if self._mode == "exclusive":
            self._collection.update_one({"_id": self._id, "exclusive.token": self.token},
                                        {"$set": {"exclusive": None}})
        else:
            self._collection.update_one({"_id": self._id}, {"$pull": {"shared": {"token": self.token}}})

    def _release_or_remember(self):
        """Releases the lease on the way out, waiting at most :data:`RELEASE_WAIT` s for the database:
        one that stopped answering must not turn the caller's error into this one, nor hold this
        process's own next take of the resource for ``GRACE``. A release that fails is retried then."""
        try:
            with pymongo.timeout(RELEASE_WAIT):
                self._release()
        except PyMongoError as error:
            logger.warning("Could not release the lease on '%s' (%s): it is released on this process's next "
                           "lease", self._id, type(error).__name__)
            _UNRELEASED.append(self)


@contextlib.contextmanager
def exclusive(samples, resource):
    """Holds ``resource`` of the dataset of ``samples`` alone, or raises :class:`LeaseHeld`."""
    collection, lease_id, me = _collection(), _lease_id(samples, resource), _mine()
    stale = me["time"] - GRACE
    _take(collection, lease_id, lambda: collection.find_one_and_update(
        {"_id": lease_id, "$or": [{"exclusive": None}, {"exclusive.time": {"$lt": stale}}],
         "shared": {"$not": {"$elemMatch": {"time": {"$gte": stale}}}}},
        {"$set": {"exclusive": me}}, upsert=True))
    lease = Lease(collection, lease_id, me["token"], "exclusive")
    try:
        yield lease
    finally:
        lease._release_or_remember()


@contextlib.contextmanager
def shared(samples, resource):
    """Holds ``resource`` beside other shared holders, never beside an exclusive one."""
    collection, lease_id, me = _collection(), _lease_id(samples, resource), _mine()
    doc = _take(collection, lease_id, lambda: collection.find_one_and_update(
        {"_id": lease_id, **_no_exclusive(me["time"])},
        {"$push": {"shared": me}}, upsert=True, return_document=ReturnDocument.AFTER))
    stale = [entry["token"] for entry in doc["shared"] if entry["time"] < me["time"] - GRACE]
    if stale:  # the leases of killed workers elsewhere, dropped by whoever comes next
        collection.update_one({"_id": lease_id}, {"$pull": {"shared": {"token": {"$in": stale}}}})
    lease = Lease(collection, lease_id, me["token"], "shared")
    try:
        yield lease
    finally:
        lease._release_or_remember()


@contextlib.contextmanager
def held(samples, resource, refusal, mode="exclusive"):
    """:func:`exclusive` (or :func:`shared`, ``mode="shared"``) with :class:`LeaseHeld` turned into
    the caller's own error, ``refusal(holder)``: the sentence a user reads."""
    take = exclusive if mode == "exclusive" else shared
    try:
        with take(samples, resource) as lease:
            yield lease
    except LeaseHeld as error:
        raise refusal(error.holder) from None


def _take(collection, lease_id, attempt):
    """``attempt()``'s answer; when it fails (the conditional upsert meets the existing document),
    the leases of killed processes on this machine are dropped and it is tried once more. Leases
    this process could not release while the database was away are released first."""
    for unreleased in list(_UNRELEASED):
        unreleased._release()
        with contextlib.suppress(ValueError):  # another thread of this process released it meanwhile
            _UNRELEASED.remove(unreleased)
    for last in (False, True):
        try:
            return attempt()
        except DuplicateKeyError:  # the filter matched nothing, so the upsert tried a second document
            doc = collection.find_one({"_id": lease_id})
            if last or not _drop_dead(collection, lease_id, doc):
                raise LeaseHeld(_holder(doc)) from None


def _drop_dead(collection, lease_id, doc):
    """Drops the leases in ``doc`` whose process, on this machine, is gone; whether there were any."""
    doc = doc or {}
    dropped = False
    if doc.get("exclusive") and _dead(doc["exclusive"]):
        collection.update_one({"_id": lease_id, "exclusive.token": doc["exclusive"]["token"]},
                              {"$set": {"exclusive": None}})
        dropped = True
    dead = [entry["token"] for entry in doc.get("shared") or [] if _dead(entry)]
    if dead:
        collection.update_one({"_id": lease_id}, {"$pull": {"shared": {"token": {"$in": dead}}}})
    return dropped or bool(dead)


def _dead(entry):
    if entry.get("host") != socket.gethostname() or not entry.get("pid"):
        return False  # another machine's: only GRACE tells
    try:
        os.kill(entry["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _no_exclusive(now):
    return {"$or": [{"exclusive": None}, {"exclusive.time": {"$lt": now - GRACE}}]}


def _holder(doc):
    """The lease that keeps others out, with its ``mode``: the exclusive one, else the newest shared one."""
    doc = doc or {}
    if doc.get("exclusive"):
        return {**doc["exclusive"], "mode": "exclusive"}
    newest = max(doc.get("shared") or [{"user": "someone", "time": _now()}], key=lambda entry: entry["time"])
    return {**newest, "mode": "shared"}


def _mine():
    return {"token": uuid.uuid4().hex, "user": current_user(), "time": _now(), "host": socket.gethostname(),
            "pid": os.getpid()}


def _now():
    # MongoDB keeps milliseconds; comparing in whole milliseconds keeps a lease's own time equal to itself.
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _lease_id(samples, resource):
    return f"{fiftyone_api.dataset_id(samples)}/{resource}"


def _collection():
    return fiftyone_api.database()[COLLECTION]


def describe(holder):
    """``"local since 10:31 UTC"``: who holds a lease and since when, for messages."""
    return f"{holder.get('user') or 'someone'} since {holder['time']:%H:%M:%S} UTC"
