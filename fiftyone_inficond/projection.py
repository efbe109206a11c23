"""A corpus's concepts as points on a plane: their text embeddings projected to 2-D.

The App's concept embedding view shows a student's knowledge base at a glance: concepts whose
prompts mean similar things lie close. t-SNE and UMAP take seconds (UMAP also compiles on
first use), so a projection is computed once per model, prompts and method and kept in the
database for every client, like the text embeddings it is made of.

**A map the user has learnt stays put**: a corpus extended by added concepts is not projected
anew (t-SNE would move every point); its map is the map of the longest projected prefix of its
prompts, each added concept placed among its nearest neighbours by meaning (:func:`place`).
"""

import hashlib

import numpy as np
from bson import Binary

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.corpus import make_corpus
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.locate import require_embeddings
from fiftyone_inficond.text_cache import run_text_embeddings

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
COLLECTION = "inficond_projections"
OUTLIERS = 0.95
_VERSION = "3"  # of the maps: cached maps of another version are not read (3: added concepts placed)


def project(embeddings, method, seed=0):
    """``(n, d)`` embeddings as ``(n, 2)`` float32 points in [-1, 1]: each axis centred and scaled
    so that all but the farthest ``1 - OUTLIERS`` of the points fit; those are drawn at the edge.

    PCA keeps global distances; t-SNE and UMAP keep neighbourhoods (cosine), which is what a
    user reads off the map ("these concepts mean similar things")."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    n = len(embeddings)
    if n < 3:
        points = np.zeros((n, 2), np.float32)
        points[:, 0] = np.arange(n)
    elif method == "pca":
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        points = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), metric="cosine", init="pca",
                      random_state=seed).fit_transform(embeddings)
    elif method == "umap":
        import umap

        points = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine", random_state=seed,
                           init="random" if n < 10 else "spectral").fit_transform(embeddings)
    else:
        raise InvalidRequest(f"Project concepts with one of {', '.join(METHODS.values())}; got {method!r}")
    points = points - np.median(points, axis=0)
    scale = np.quantile(np.abs(points), OUTLIERS, axis=0)  # a few far concepts must not squash the rest
    return np.clip(points / np.where(scale > 0, scale, 1), -1, 1).astype(np.float32)


NEIGHBOURS = 5  # an added concept lies among this many nearest concepts,
SHARPNESS = 0.05  # weighted by exp(similarity / SHARPNESS): a near-twin lands on its twin


def place(points, embeddings, added):
    """Points for ``added`` concepts on an existing map.

    Args:
        points: ``(n, 2)`` the map's points
        embeddings: ``(n, d)`` unit text embeddings of the map's concepts
        added: ``(m, d)`` unit text embeddings of the concepts to place

    Returns:
        ``(m, 2)`` float32: each at the mean of its :data:`NEIGHBOURS` most similar concepts'
        points, weighted by ``exp(similarity / SHARPNESS)``."""
    similarity = np.asarray(added, np.float32) @ np.asarray(embeddings, np.float32).T
    k = min(NEIGHBOURS, len(points))
    nearest = np.argsort(-similarity, axis=1)[:, :k]
    closest = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.exp((closest - closest[:, :1]) / SHARPNESS)
    return (np.einsum("mk,mkc->mc", weights, points[nearest]) / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _prefix_keys(text_model, method, texts):
    """The cache key of every prefix of ``texts`` (``keys[m]``: of the first ``m``), in one pass."""
    digest = hashlib.sha256("\n".join([_VERSION, text_model, method]).encode("utf-8"))
    keys = [digest.hexdigest()]
    for text in texts:
        digest.update(("\n" + text).encode("utf-8"))
        keys.append(digest.hexdigest())
    return keys


def concept_projection(samples, field="concepts", method="tsne"):
    """The concepts of the concept run in ``field`` projected with ``method``: ``{"concepts":
    names, "points": (n, 2) float32, "text_model": the id of the model that embedded them}`` in
    corpus column order; cached in the database."""
    config, corpus, texts, keys = _map_of(samples, field, method)
    collection = fiftyone_api.database()[COLLECTION]
    doc = collection.find_one({"_id": keys[-1]})
    if doc is not None:
        points = _points(doc, len(texts))
    else:
        points = _extended(collection, keys, config, texts)
        if points is None:
            points = project(run_text_embeddings(config, texts), method)
        collection.replace_one({"_id": keys[-1]}, {"method": method, "points": Binary(points.tobytes())}, upsert=True)
    return {"concepts": list(corpus.names), "points": points, "text_model": config["text_model"]}


def is_projected(samples, field="concepts", method="tsne"):
    """Whether :func:`concept_projection` of ``field`` by ``method`` reads a kept map (milliseconds)
    rather than computing one (for Broden's 1,153 concepts, up to a minute): a map of the corpus, or
    of a prefix of it that the added concepts are placed on."""
    _, _, texts, keys = _map_of(samples, field, method)
    if len(texts) < 4:
        return True  # nothing to compute
    return fiftyone_api.database()[COLLECTION].count_documents({"_id": {"$in": keys[3:]}}, limit=1) > 0


def _map_of(samples, field, method):
    """``(config, corpus, prompts, cache keys of every prefix)`` of the map of ``field`` by ``method``."""
    if method not in METHODS:
        raise InvalidRequest(f"Project concepts with one of {', '.join(METHODS.values())}; got {method!r}")
    config = require_embeddings(samples, field)
    corpus = make_corpus(config["concepts"])
    texts = corpus.texts(config["template"])
    return config, corpus, texts, _prefix_keys(config["text_model"], method, texts)


def _points(doc, n):
    return np.frombuffer(doc["points"], dtype=np.float32).reshape(n, 2)


def _extended(collection, keys, config, texts):
    """The map of the longest projected prefix of ``texts`` (at least 3), the rest placed on it;
    ``None`` without one."""
    docs = {doc["_id"]: doc for doc in collection.find({"_id": {"$in": keys[3:-1]}})}
    width = next((m for m in range(len(texts) - 1, 2, -1) if keys[m] in docs), None)
    if width is None:
        return None
    embeddings = run_text_embeddings(config, texts)
    points = _points(docs[keys[width]], width)
    return np.concatenate([points, place(points, embeddings[:width], embeddings[width:])])
