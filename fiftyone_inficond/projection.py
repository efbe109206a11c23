"""A corpus's concepts as points on a plane: their text embeddings projected to 2-D.

The App's concept embedding view shows a student's knowledge base at a glance: concepts whose
prompts mean similar things lie close. t-SNE and UMAP take seconds (UMAP also compiles on
first use), so a projection is computed once per model, prompts and method and kept in the
database for every client, like the text embeddings it is made of; a corpus extended by added
concepts has other prompts, hence its own projection.
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
_VERSION = "2"  # of project(): cached maps of another version are not read


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


def concept_projection(samples, field="concepts", method="tsne"):
    """The concepts of the concept run in ``field`` projected with ``method``: ``{"concepts":
    names, "points": (n, 2) float32, "text_model": the id of the model that embedded them}`` in
    corpus column order; cached in the database."""
    if method not in METHODS:
        raise InvalidRequest(f"Project concepts with one of {', '.join(METHODS.values())}; got {method!r}")
    config = require_embeddings(samples, field)
    corpus = make_corpus(config["concepts"])
    texts = corpus.texts(config["template"])
    key = hashlib.sha256("\n".join([_VERSION, config["text_model"], method, *texts]).encode("utf-8")).hexdigest()
    collection = fiftyone_api.database()[COLLECTION]
    doc = collection.find_one({"_id": key})
    if doc is None:
        points = project(run_text_embeddings(config, texts), method)
        collection.replace_one({"_id": key}, {"method": method, "points": Binary(points.tobytes())}, upsert=True)
    else:
        points = np.frombuffer(doc["points"], dtype=np.float32).reshape(len(texts), 2)
    return {"concepts": list(corpus.names), "points": points, "text_model": config["text_model"]}
