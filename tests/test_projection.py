"""Concept maps: neighbourhoods kept, computed once per corpus and method, shared by clients."""

import numpy as np
import pytest
from conftest import TINY_MODEL, run_python

from fiftyone_inficond import projection
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.new_concepts import add_concepts

CORPUS = ["person", "dog", "car", "sky", "grass", "wood", "red", "striped", "road", "water", "cat", "tree"]


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m == "umap" else m  # numba compiles
                                    for m in projection.METHODS])
def test_two_clusters_stay_apart_on_the_map(method):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 32))
    points = np.concatenate([c + 0.05 * rng.normal(size=(20, 32)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    xy = projection.project(points, method)
    assert xy.shape == (40, 2) and xy.dtype == np.float32 and np.abs(xy).max() <= 1 + 1e-6
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(40) * 9
    nearest = distance.argmin(axis=1)
    assert ((nearest < 20) == (np.arange(40) < 20)).all()  # every point's neighbour is in its cluster
    np.testing.assert_array_equal(xy, projection.project(points, method))  # seeded: the same map again


def test_a_projection_is_computed_once_and_read_by_another_client(coco128, tiny_checkpoint, monkeypatch):
    view = coco128.limit(6)
    compute_concepts(view, model=TINY_MODEL, pretrained=tiny_checkpoint, corpus=CORPUS, batch_size=6)
    first = projection.concept_projection(view, method="pca")
    assert first["concepts"] == CORPUS and first["points"].shape == (len(CORPUS), 2)
    monkeypatch.setattr(projection, "project", lambda *args: pytest.fail("computed again"))
    np.testing.assert_array_equal(projection.concept_projection(coco128, method="pca")["points"], first["points"])
    other = run_python(
        "import fiftyone as fo, numpy as np\n"
        "from fiftyone_inficond.projection import concept_projection\n"
        f"print(concept_projection(fo.load_dataset('{coco128.name}'), method='pca')['points'].tolist())"
    )
    np.testing.assert_array_equal(np.array(eval(other.strip().splitlines()[-1]), np.float32), first["points"])

    add_concepts(coco128, ["boat"])  # the map stays put, "boat" placed on it (still not projected again)
    extended = projection.concept_projection(coco128, method="pca")
    assert extended["concepts"] == CORPUS + ["boat"] and extended["points"].shape == (len(CORPUS) + 1, 2)
    np.testing.assert_array_equal(extended["points"][: len(CORPUS)], first["points"])
    np.testing.assert_array_equal(projection.concept_projection(coco128, method="pca")["points"], extended["points"])


def test_an_added_concept_is_placed_among_its_nearest_concepts_by_meaning():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(30, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    points = rng.uniform(-1, 1, size=(30, 2)).astype(np.float32)
    twin = embeddings[[7]]  # a concept meaning what concept 7 means lands on it
    np.testing.assert_allclose(projection.place(points, embeddings, twin)[0], points[7], atol=1e-3)
    between = embeddings[[3]] + embeddings[[4]]  # one meaning both: half-way
    placed = projection.place(points, embeddings, between / np.linalg.norm(between))
    assert placed.shape == (1, 2) and placed.dtype == np.float32
    assert np.linalg.norm(placed[0] - (points[3] + points[4]) / 2) < 0.15


def test_an_unknown_method_is_refused(coco128):
    with pytest.raises(InvalidRequest, match="PCA, t-SNE, UMAP"):
        projection.concept_projection(coco128, method="mds")
