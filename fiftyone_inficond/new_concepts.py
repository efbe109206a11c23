"""Concepts added to a concept run after extraction, and corpus concepts found by a typed phrase.

An added concept's column is what extraction would have computed for it (per image, the best
cosine similarity over its segments, negatives 0), from the segment embeddings stored with the
run: one text encoding and a matrix product, no image encoded again. Columns are appended, so
student runs trained before an addition keep reading exactly their columns.

Write order: the run is first recorded with its new corpus as unfinished (``complete=False``,
``extends``: the old width), then every vector and segment label is rewritten, then the run is
marked complete. Readers refuse an unfinished run; calling :func:`add_concepts` again with the
same names finishes it (vectors already extended are kept), so widths never mix. An addition
holds the field alone (a lease), so an extraction in another process cannot write vectors of the
old width meanwhile.
"""

import numpy as np

from fiftyone_inficond import leases
from fiftyone_inficond.clip import require_distinct_prompts, tokenizer_of
from fiftyone_inficond.concepts import concept_map
from fiftyone_inficond.corpus import concept_prompt, make_corpus
from fiftyone_inficond.crashpoints import crashpoint
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.extraction import MAX_CONCEPTS, name_concepts
from fiftyone_inficond.fiftyone_api import dataset_of, fresh_dataset, update_samples, values
from fiftyone_inficond.locate import open_index, require_embeddings
from fiftyone_inficond.runs import CONCEPTS_METHOD, mark_complete, run_config, segments_field
from fiftyone_inficond.text_cache import run_text_embeddings
from fiftyone_inficond.validation import whole_number

MAX_NAME_LENGTH = 100
_LISTED = 10  # names a message lists before it counts the rest


def add_concepts(samples, names, field="concepts"):
    """Appends concepts ``names`` to the concept run in ``field`` for every sample of its dataset.

    Returns:
        ``{"added": names, "concepts": the new number of concepts, "samples": vectors extended}``
    """
    dataset = dataset_of(samples)
    with _adding(dataset, field):
        config, width = _extendable(dataset, field, names)
        names = list(config["concepts"][width:]) if config.get("complete") is False else _new_names(names, config)
        if width + len(names) > MAX_CONCEPTS:  # before anything is marked unfinished
            raise InvalidRequest(
                f"A concept run holds at most {MAX_CONCEPTS:,} concepts: '{field}' has {width:,}, so at most "
                f"{MAX_CONCEPTS - width:,} more can be added, not {len(names):,}"
            )
        corpus = make_corpus(list(config["concepts"][:width]) + names)
        texts = corpus.texts(config["template"])
        require_distinct_prompts(tokenizer_of(config["model"]), corpus.names, texts, config["model"])
        columns = _columns(dataset, field, config, texts[width:])  # (n, c)
        if config.get("complete") is not False:
            _record_extension(dataset, field, corpus, width)
        crashpoint("add:run-extending")
        extended = _write(dataset, field, columns, width)
        mark_complete(dataset, field)
    return {"added": names, "concepts": len(corpus), "samples": extended}


def _adding(dataset, field):
    """Holds concept field ``field`` alone while its vectors grow: no extraction writes vectors of
    the old width meanwhile, and no other addition interleaves (:mod:`fiftyone_inficond.leases`)."""
    def refusal(holder):
        doing = "added to" if holder["mode"] == "exclusive" else "computed into"
        return InvalidRequest(
            f"Concepts are being {doing} '{field}' by {leases.describe(holder)}: add concepts once that finishes"
        )
    return leases.held(dataset, f"concepts/{field}", refusal)


def search_concepts(samples, phrase, n=10, field="concepts"):
    """The ``n`` corpus concepts whose text embeddings are nearest a typed ``phrase``:
    ``[{"concept", "similarity"}]``, best first (JSON-safe)."""
    config = require_embeddings(samples, field)
    phrase = _phrase(phrase)
    n = whole_number(n, "the number of concepts to find", 1, 1000)
    corpus = make_corpus(config["concepts"])
    texts = corpus.texts(config["template"])
    embeddings = run_text_embeddings(config, texts + [config["template"].format(concept_prompt(phrase))])
    similarity = embeddings[:-1] @ embeddings[-1]
    best = np.argsort(-similarity, kind="stable")[:n]
    return [{"concept": corpus.names[j], "similarity": float(similarity[j])} for j in best]


def _extendable(dataset, field, names):
    """The run's config and its width before this addition; an unfinished addition must be
    finished with the same names."""
    config = run_config(dataset, field, CONCEPTS_METHOD)
    if config is None or config.get("complete") is not False:
        config = require_embeddings(dataset, field)
        return config, len(config["concepts"])
    width = config.get("extends")
    pending = list(config["concepts"][width:])
    if width is None or names != pending:
        shown = pending if len(pending) <= _LISTED else pending[:_LISTED] + [f"... {len(pending) - _LISTED:,} more"]
        raise InvalidRequest(
            f"An earlier addition to '{field}' did not finish: add exactly its concepts again to finish it "
            f"({len(pending):,}: {', '.join(map(str, shown))})"
        )
    return config, width


def _new_names(names, config):
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise InvalidRequest(f"Give the concepts to add as a non-empty list of names; got {names!r}")
    known = {concept_prompt(name).casefold(): name for name in config["concepts"]}
    cleaned = []
    for name in names:
        text = _phrase(name)
        prompt = concept_prompt(text).casefold()
        if prompt in known:
            raise InvalidRequest(f"Concept '{text}' is already in the corpus (as '{known[prompt]}'): add only new ones")
        known[prompt] = text
        cleaned.append(text)
    return cleaned


def _phrase(text):
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest(f"A concept is a non-blank name or phrase; got {text!r}")
    text = " ".join(text.split())
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"A concept is at most {MAX_NAME_LENGTH} characters; got one of {len(text):,}")
    return text


def _columns(dataset, field, config, texts):
    """The new columns from the stored segment embeddings: sample ids, their ``(n, c)`` concept
    vector columns, and per sample its segments' ``(segments, c)`` similarities."""
    index = open_index(dataset, field)
    similarity = index.similarities(run_text_embeddings(config, texts))  # (m, c)
    starts, ends = index.bounds()
    best = np.maximum.reduceat(similarity, starts, axis=0) if len(starts) else np.zeros((0, len(texts)))
    segments = [similarity[start:end] for start, end in zip(starts, ends)]
    return {"ids": index.sample_ids, "vectors": np.maximum(best, 0), "segments": segments}


def _record_extension(dataset, field, corpus, width):
    dataset = fresh_dataset(dataset)
    run = dataset.get_run_info(field).config
    run.concepts, run.corpus_id, run.complete, run.extends = list(corpus.names), corpus.id, False, width
    dataset.update_run_config(field, run)
    name_concepts(dataset, field, corpus.names)


def _write(dataset, field, columns, width):
    """Appends the new columns to every vector still ``width`` wide, and lets a new concept
    become a segment's best where it beats the old best. Returns how many vectors grew.

    One update per sample: its segment labels and its vector (whose new width is what marks it
    as extended) change together."""
    path = segments_field(field)
    ids, vectors, best, best_similarity, segment_maps = values(
        dataset.exists(path),
        ["id", field, f"{path}.concepts", f"{path}.similarities", f"{path}.segment_map"],
        arrays=(field, f"{path}.segment_map"),
    )
    row = {sample_id: i for i, sample_id in enumerate(columns["ids"])}
    updates = {}
    for sample_id, vector, concepts, similarities, segment_map in zip(ids, vectors, best, best_similarity,
                                                                      segment_maps):
        i = row.get(sample_id)
        if i is None or vector is None or len(vector) != width:
            continue  # extended by an earlier, unfinished call, or segmented after the index was read
        update = updates[sample_id] = {field: np.concatenate([vector, columns["vectors"][i]]).astype(np.float32)}
        per_segment = columns["segments"][i]
        winner, value = per_segment.argmax(axis=1), per_segment.max(axis=1)
        beats = value > np.asarray(similarities)
        if beats.any():  # mostly not: only those labels are rewritten
            concepts = [int(width + w) if b else c for c, w, b in zip(concepts, winner, beats)]
            update[f"{path}.concepts"] = concepts
            update[f"{path}.similarities"] = [round(float(v), 4) if b else s
                                              for s, v, b in zip(similarities, value, beats)]
            update[f"{path}.mask"] = concept_map(segment_map, concepts)
    update_samples(dataset, updates)
    return len(updates)
