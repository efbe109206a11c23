"""Concept text embeddings encoded once per model and prompt, shared through the database.

Encoding Broden's 1,153 prompts costs ViT-B-16 about 17 s on a laptop CPU, and every
extraction, shard, resume, added concept and phrase search needs them. Each embedding is
stored once, keyed by the model (name and weights: a tag, a checkpoint file's SHA-256, or the
seeded random initialisation) and the exact prompt text, so every client of the database,
every corpus sharing a prompt and every template reuse it. Embeddings are stored as float32
bytes exactly as :func:`fiftyone_inficond.clip.encode_texts` returned them.
"""

import functools
import hashlib
import os

import numpy as np
import torch
from bson import Binary
from pymongo.errors import BulkWriteError

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.clip import encode_texts, load_clip
from fiftyone_inficond.corpus import DEFAULT_TEMPLATE
from fiftyone_inficond.errors import RunInputsChanged

COLLECTION = "inficond_text_embeddings"
_DUPLICATE_KEY = 11000


def weights_id(clip):
    """What identifies a model's weights: its checkpoint file's digest, its pretrained tag, or
    the seeded random initialisation (:func:`fiftyone_inficond.clip.load_clip`)."""
    if not clip.pretrained:
        return "random-init:seed0"
    if os.path.isfile(clip.pretrained):
        stat = os.stat(clip.pretrained)
        return "sha256:" + _cached_digest(os.path.realpath(clip.pretrained), stat.st_size, stat.st_mtime_ns)
    return "tag:" + clip.pretrained


@functools.cache
def _cached_digest(path, size, mtime_ns):  # size and mtime: a rewritten file is hashed again
    return file_digest(path)


def file_digest(path):
    """The SHA-256 of a file's bytes, hex, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _key(model, text):
    return hashlib.sha256(f"{model}\n{text}".encode("utf-8")).hexdigest()


def model_id(clip):
    """The cache's name of a loaded model: its open_clip name and :func:`weights_id`."""
    return f"{clip.name}|{weights_id(clip)}"


def cached_embeddings(model, texts):
    """``{text: (embed_dim,) float32}`` for the texts the cache holds for model id ``model``:
    what a stored concept run can read without loading its model."""
    keys = {_key(model, text): text for text in texts}
    cursor = _collection().find({"_id": {"$in": list(keys)}}, {"vector": True})
    return {keys[doc["_id"]]: np.frombuffer(doc["vector"], dtype=np.float32).copy() for doc in cursor}


def text_embeddings(clip, texts):
    """L2-normalized embeddings of ``texts``, shape ``(len(texts), embed_dim)`` float32 on the
    model's device: read from the shared cache, encoding (and storing) only the missing ones."""
    model = model_id(clip)
    found = cached_embeddings(model, texts)
    missing = sorted(set(texts) - set(found))
    if missing:
        encoded = encode_texts(clip, missing).cpu().numpy()
        docs = [{"_id": _key(model, text), "model": model, "text": text, "vector": Binary(row.tobytes())}
                for text, row in zip(missing, encoded)]
        _insert_new(_collection(), docs)
        found.update(zip(missing, encoded))
    return torch.from_numpy(np.stack([found[text] for text in texts])).to(clip.device)


def _collection():
    return fiftyone_api.database()[COLLECTION]


def _insert_new(collection, docs):
    """Inserts the documents another client has not inserted meanwhile (same key, same vector)."""
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as error:
        if any(e["code"] != _DUPLICATE_KEY for e in error.details["writeErrors"]):
            raise


def run_text_embeddings(config, texts):
    """``(len(texts), embed_dim)`` float32 unit embeddings with the model of a stored concept run
    (its config): from the cache, else encoded (and cached) with the run's model, loaded here."""
    found = cached_embeddings(config["text_model"], texts)
    if len(found) < len(set(texts)):
        return text_embeddings(run_clip(config), texts).cpu().numpy()
    return np.stack([found[text] for text in texts])


def run_clip(config):
    """The model of a stored concept run (its config), loaded on the CPU: refused when its weights
    are no longer those the run was computed with (a checkpoint rewritten at the same path), which
    would give text embeddings and exports that silently disagree with the stored vectors."""
    clip = load_clip(config["model"], config["pretrained"], device="cpu")
    if model_id(clip) != config["text_model"]:
        raise RunInputsChanged(
            f"Checkpoint '{config['pretrained']}' was rewritten since these concepts were computed with it: put "
            f"the original file back, or compute the concepts again"
        )
    return clip


def concept_embeddings(clip, corpus, template=DEFAULT_TEMPLATE):
    """The corpus's prompt embeddings in corpus column order, through the shared cache."""
    return text_embeddings(clip, corpus.texts(template))
