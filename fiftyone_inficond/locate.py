"""Where a concept is, for any concept of a concept run, from the segment embeddings stored with it.

Per image: the concept's similarity on the patch grid (each patch takes its segment's cosine
similarity: a FiftyOne ``Heatmap`` map) and the box of its best segment. Across a collection:
the image patches (segments) most like the concept, for the paper's concept gallery and the
knowledge view's patches. A collection's segment embeddings are read once per process into
one float16 matrix (:class:`SegmentIndex`); a query is then a matrix-vector product, in
float32 chunks so memory stays at the float16 matrix.
"""

from dataclasses import dataclass

import numpy as np
import torch

from fiftyone_inficond.corpus import make_corpus
from fiftyone_inficond.errors import InvalidRequest, UnknownName
from fiftyone_inficond.fiftyone_api import dataset_id, dataset_of, exact_count, values
from fiftyone_inficond.images import crop
from fiftyone_inficond.runs import (
    CONCEPTS_METHOD,
    CORPUS_ATTRIBUTES,
    fingerprint,
    require_run,
    run_config,
    segments_field,
)
from fiftyone_inficond.text_cache import run_text_embeddings
from fiftyone_inficond.validation import whole_number

_CHUNK = 32768  # segments per float32 chunk of a query


def segment_box(mask, segment):
    """``[x, y, width, height]`` (relative to the image, FiftyOne's convention) of the patches
    of ``segment`` in a ``(rows, cols)`` segment map."""
    ys, xs = np.nonzero(mask == segment)
    rows, cols = mask.shape
    return [xs.min() / cols, ys.min() / rows, (xs.max() + 1 - xs.min()) / cols, (ys.max() + 1 - ys.min()) / rows]


@dataclass
class SegmentIndex:
    """Every stored segment of a collection.

    Attributes:
        sample_ids: ``(n,)`` sample ids
        masks: per sample, its ``(rows, cols)`` segment map
        embeddings: ``(m, embed_dim)`` float16 unit segment embeddings, all samples' segments
        owner: ``(m,)`` the row in ``sample_ids`` of each segment
        segment: ``(m,)`` each segment's id in its sample's map
    """

    sample_ids: list
    masks: list
    embeddings: torch.Tensor
    owner: np.ndarray
    segment: np.ndarray

    def similarities(self, texts):
        """Float32 cosine similarities of every segment to unit text embeddings: ``(m,)`` for one
        ``(embed_dim,)``, ``(m, c)`` for ``(c, embed_dim)``."""
        texts = torch.as_tensor(texts, dtype=torch.float32)
        texts = texts.T if texts.ndim == 2 else texts
        chunks = [self.embeddings[i : i + _CHUNK].float() @ texts for i in range(0, len(self.embeddings), _CHUNK)]
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, *texts.shape[1:]), np.float32)

    def rows_of(self, samples):
        """The rows of the index that hold the samples of a collection (all for its dataset)."""
        if samples is dataset_of(samples):
            return None
        inside = set(samples.values("id"))
        return [i for i, sample_id in enumerate(self.sample_ids) if sample_id in inside]

    def bounds(self):
        """``(starts, ends)``: each sample's segments are rows ``starts[i]:ends[i]``."""
        starts = np.searchsorted(self.owner, np.arange(len(self.sample_ids)))
        return starts, np.append(starts[1:], len(self.owner))

    def top_patches(self, text, n, rows=None):
        """The ``n`` segments most like ``text`` (among samples ``rows`` if given), best first."""
        similarity = self.similarities(text)
        if rows is not None:
            similarity = np.where(np.isin(self.owner, rows), similarity, -np.inf)
        return self.patches(similarity, n)

    def patches(self, similarity, n):
        """The ``n`` segments of highest ``(m,)`` ``similarity``, best first."""
        best = np.argsort(-similarity, kind="stable")[:n]
        best = best[np.isfinite(similarity[best])]
        return [
            {
                "sample_id": self.sample_ids[self.owner[i]],
                "segment": int(self.segment[i]),
                "box": [float(v) for v in segment_box(self.masks[self.owner[i]], self.segment[i])],
                "similarity": float(similarity[i]),
            }
            for i in best
        ]

    def heatmaps(self, text, rows=None):
        """Per sample (of index rows ``rows`` if given): its ``(rows, cols)`` float32 similarity
        map on the patch grid and its best segment."""
        similarity = self.similarities(text)
        starts, ends = self.bounds()
        result = {}
        for row in range(len(self.sample_ids)) if rows is None else rows:
            start, end = starts[row], ends[row]
            values = similarity[start:end]
            best = int(np.argmax(values))
            mask = self.masks[row]
            result[self.sample_ids[row]] = {
                "map": values[mask].astype(np.float32),
                "segment": int(self.segment[start + best]),
                "box": [float(v) for v in segment_box(mask, self.segment[start + best])],
                "similarity": float(values[best]),
            }
        return result


def read_index(samples, field="concepts"):
    """A :class:`SegmentIndex` of the samples of ``samples`` that have segments in ``field``."""
    path = segments_field(field)
    arrays = (f"{path}.segment_map", f"{path}.embeddings")
    ids, masks, embeddings = values(samples.exists(path), ["id", *arrays], arrays=arrays)
    counts = np.array([len(e) for e in embeddings], dtype=np.int64)
    return SegmentIndex(
        sample_ids=ids,
        masks=masks,
        embeddings=torch.from_numpy(np.concatenate(embeddings)) if ids else torch.zeros(0, 0, dtype=torch.float16),
        owner=np.repeat(np.arange(len(ids)), counts),
        segment=np.concatenate([np.arange(c) for c in counts]) if ids else np.zeros(0, np.int64),
    )


_INDEXES = {}  # (dataset id, field) -> (run fingerprint, segmented samples, SegmentIndex)


def open_index(samples, field="concepts"):
    """The whole dataset's :class:`SegmentIndex`, read once per process and again only when the
    concept run was replaced or extraction added samples since."""
    dataset = dataset_of(samples)
    key = (str(dataset_id(dataset)), field)
    config = run_config(dataset, field, CONCEPTS_METHOD)  # unfinished additions too: they keep the segments
    if config is None or not config.get("concept_masks"):
        require_embeddings(dataset, field)  # says why not
    # Adding concepts leaves the segments as they are: only new extraction or samples reread them.
    version = (fingerprint(config, ignore=CORPUS_ATTRIBUTES), exact_count(dataset.exists(segments_field(field))))
    cached = _INDEXES.get(key)
    if cached is None or cached[0] != version:
        cached = _INDEXES[key] = (version, read_index(dataset, field))
    return cached[1]


def concept_text_embedding(samples, concept, field="concepts"):
    """The ``(embed_dim,)`` unit text embedding of a concept of the run in ``field``: from the
    shared text cache, or (if it was purged) encoded again with the run's model."""
    return concept_text_embeddings(samples, [concept], field)[0]


def concept_text_embeddings(samples, concepts, field="concepts"):
    """``(m, embed_dim)`` :func:`concept_text_embedding` of several concepts, with one read of the
    run and of the text cache (a knowledge view's rows: one each for 1,153 concepts cost 60 ms)."""
    config = require_embeddings(samples, field)
    corpus = make_corpus(config["concepts"])
    texts, known = corpus.texts(config["template"]), set(corpus.names)
    for concept in concepts:
        if not isinstance(concept, str) or concept not in known:
            raise UnknownName(f"Concept {concept!r} is not in the corpus of '{field}': pick one of its concepts")
    return run_text_embeddings(config, [texts[corpus.index(concept)] for concept in concepts])


def top_patches(samples, concept, n=20, field="concepts"):
    """The ``n`` image patches (segments) of ``samples`` most like ``concept``, best first:
    ``[{"sample_id", "segment", "box": [x, y, w, h], "similarity"}]`` (JSON-safe)."""
    n = whole_number(n, "the number of patches", 1, 10_000)
    text = concept_text_embedding(samples, concept, field)
    index = open_index(samples, field)
    return index.top_patches(text, n, index.rows_of(samples))


def concepts_patches(samples, concepts, n=4, field="concepts"):
    """:func:`top_patches` of several concepts of the whole dataset in one pass over the
    segments (a knowledge view's rows): ``{concept: [patch, ...]}``."""
    n = whole_number(n, "the number of patches", 1, 10_000)
    if not concepts:  # e.g. a ranking with no rows
        return {}
    texts = np.asarray(concept_text_embeddings(samples, concepts, field))
    index = open_index(samples, field)
    similarity = index.similarities(texts)  # (m, c)
    return {concept: index.patches(similarity[:, j], n) for j, concept in enumerate(concepts)}


def concept_heatmaps(samples, concept, field="concepts"):
    """Per sample of ``samples``: ``{"map": (rows, cols) similarities, "segment", "box",
    "similarity"}`` of its segment most like ``concept``."""
    text = concept_text_embedding(samples, concept, field)
    return read_index(samples, field).heatmaps(text)


def can_locate(samples, field="concepts"):
    """Whether concepts of the run in ``field`` can be located (its segments keep embeddings)."""
    config = run_config(samples, field, CONCEPTS_METHOD)
    return bool(config and config.get("concept_masks"))


def require_embeddings(samples, field):
    config = require_run(samples, field, CONCEPTS_METHOD, "concepts")
    if not config.get("concept_masks"):
        raise InvalidRequest(
            f"The concepts in '{field}' were computed by an older version, so concepts cannot be "
            f"located or named in them: compute them again with overwrite=True"
        )
    return config


def patch_crops(samples, patches, size=96):
    """The image region of each patch of :func:`top_patches`, as RGB PIL images in the same order."""
    ids = [patch["sample_id"] for patch in patches]
    paths = dict(zip(*dataset_of(samples).select(ids).values(["id", "filepath"])))
    return [crop(paths[patch["sample_id"]], patch["box"], size) for patch in patches]
