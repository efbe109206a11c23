"""Concepts that name one thing: a 👍 or 👎 on one of them acts on them all.

Broden spells some things twice (cloud/clouds, doorframe/door frame, fireplace/fire place,
elevator-door/elevator door): each is a column of its own, so a 👎 on cloud alone leaves the
student free to move cloud's weight to clouds. Groups are formed when a student run is
trained and recorded with it; the concept columns stay as they are (merging them at corpus
load would change every concept run and export made from that corpus).

Two concepts are in one group when their names are the same word up to case, spaces,
hyphens and underscores and a plural ``s`` (always), or, if a ``threshold`` is given, when
their prompts' embeddings in the run's own text model have at least that cosine (groups are
the connected components of those pairs). Spelling is the default rule because it holds for
any model: in the world CLIP, trained on the world's 40 words, "cloud" and "clouds" embed at a
cosine of -0.11 while "wet bar" and "handle bar" reach 0.99 and "tail" and "wing" 0.987; even
in a real CLIP, a cosine measures relatedness, and related concepts (wheel, tire) are not
the same concept.

Pure functions: names and ``(n, d)`` unit embeddings in, groups of column indices out.
"""

import re

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fiftyone_inficond.validation import number


def spelling_key(name):
    """What a name is up to case, spaces, hyphens, underscores and a trailing plural ``s``."""
    key = re.sub(r"[\s\-_]+", "", name.lower())
    return key[:-1] if key.endswith("s") and not key.endswith("ss") else key


def class_concepts(names, classes):
    """``{column: class}``: the concepts that name a class, by :func:`spelling_key` ("Car", "cars"
    and "car" all name class ``car``). A student that may use them explains its class by its own
    name, true and useless (Label-free CBM and VLG-CBM drop such concepts too)."""
    by_key = {spelling_key(cls): cls for cls in classes}
    return {j: by_key[spelling_key(name)] for j, name in enumerate(names) if spelling_key(name) in by_key}


def check_threshold(threshold):
    """``threshold`` if it is ``None`` (spelling only) or a cosine in (0, 1]."""
    if threshold is None:
        return None
    return number(threshold, "the synonym threshold (a cosine between prompt embeddings)", 0, 1, low_open=True)


def synonym_groups(names, embeddings=None, threshold=None):
    """Groups of two or more concepts that name one thing, as lists of column indices in
    column order, ordered by their first column.

    Args:
        names: ``(n,)`` concept names
        embeddings: ``(n, d)`` unit prompt embeddings, needed only with ``threshold``
        threshold: a cosine in (0, 1], or ``None`` for spelling variants only
    """
    n = len(names)
    first = {}
    for j, name in enumerate(names):
        first.setdefault(spelling_key(name), j)
    pairs = [(first[spelling_key(name)], j) for j, name in enumerate(names) if first[spelling_key(name)] != j]
    if check_threshold(threshold) is not None:
        similar = np.triu(np.asarray(embeddings, np.float32) @ np.asarray(embeddings, np.float32).T >= threshold, 1)
        pairs += list(zip(*np.nonzero(similar)))
    if not pairs:
        return []
    rows, columns = np.array(pairs).T
    _, labels = connected_components(coo_matrix((np.ones(len(rows)), (rows, columns)), shape=(n, n)), directed=False)
    members = {}
    for j, label in enumerate(labels):
        members.setdefault(label, []).append(j)
    return sorted((group for group in members.values() if len(group) > 1), key=lambda group: group[0])


def group_of(groups, column):
    """The columns of ``column``'s group (itself alone when it has none)."""
    return next((group for group in groups if column in group), [column])
