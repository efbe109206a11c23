"""Concept extraction over a FiftyOne collection: batched, resumable, recorded as a run."""

import colorsys
import logging
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import fiftyone as fo
import fiftyone.core.utils as fou

from fiftyone_inficond import leases
from fiftyone_inficond.clip import ClipModel, load_clip, require_distinct_prompts
from fiftyone_inficond.concepts import ConceptExtractor, concept_map
from fiftyone_inficond.corpus import DEFAULT_TEMPLATE, check_template, load_corpus
from fiftyone_inficond.dense import patch_grid
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import database_errors, dataset_of, exact_count, fresh_dataset, require_own_samples
from fiftyone_inficond.images import image_batches
from fiftyone_inficond.runs import (
    CONCEPTS_METHOD,
    claim_field,
    fingerprint,
    record_run,
    require_run,
    run_config,
    segments_field,
)
from fiftyone_inficond.text_cache import concept_embeddings, model_id
from fiftyone_inficond.validation import field_name, number, whole_number

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-B-16"
_MAX_SEGMENTS = 255  # segment maps are stored as uint8
MAX_CONCEPTS = 65535 - 1  # the App's concept map is uint16, corpus column + 1
_RESUMABLE = ("field", "complete", "extends")  # what an addition of concepts changes besides the corpus


@dataclass
class ExtractionResult:
    """What a :func:`compute_concepts` call did.

    Attributes:
        computed: samples whose concepts this call computed
        already_done: samples skipped because an earlier call of the same run computed them
        failed: sample id -> error, for images that could not be read
    """

    computed: int = 0
    already_done: int = 0
    failed: dict = dataclass_field(default_factory=dict)


def compute_concepts(
    samples,
    model=DEFAULT_MODEL,
    pretrained=None,
    corpus=None,
    field="concepts",
    template=DEFAULT_TEMPLATE,
    n_segments=16,
    spatial_weight=1.0,
    batch_size=32,
    num_workers=0,
    device=None,
    overwrite=False,
    progress=None,
):
    """Computes concept vectors of the samples into ``field``, resuming where a run stopped.

    Writes a ``VectorField`` ``field`` (float32, one column per corpus concept, in corpus
    order) and a :class:`fiftyone.core.labels.Segmentation` ``<field>_segments`` on the patch
    grid: its ``mask`` is the concept map the App draws (each patch's segment's nearest
    concept, named on hover by the field's mask targets), ``segment_map`` the segment of every
    patch, ``concepts``/``similarities`` each segment's nearest corpus column and its cosine
    similarity, ``embeddings`` its float16 embedding. The run is recorded under key ``field``
    with its model, corpus (id and names) and grid.

    Args:
        samples: a FiftyOne collection of images
        model: an open_clip model name with a ViT image tower, or a loaded
            :class:`fiftyone_inficond.clip.ClipModel` (then ``pretrained`` is ignored)
        pretrained: a pretrained tag of ``model`` or a local checkpoint path; ``None`` for a
            random initialisation
        corpus: ``None`` (Broden), a corpus file path, a list of names or a
            :class:`fiftyone_inficond.corpus.Corpus`
        field: the sample field to write
        template: the text prompt template of a concept
        n_segments: about how many segments per image (at most 255)
        spatial_weight: how strongly segments stick to neighbouring patches
        batch_size: images per batch
        num_workers: image-decoding worker processes
        device: a torch device; CUDA when available by default
        overwrite: recompute everything when ``field`` holds another run's concepts
        progress: ``True``/``False`` for a progress bar, or a callback taking a
            :class:`fiftyone.core.utils.ProgressBar`

    Returns:
        an :class:`ExtractionResult`
    """
    require_own_samples(samples, "concepts")  # before the field is held (prepare_concepts checks again)
    batch_size = whole_number(batch_size, "the batch size", 1, 4096)
    num_workers = whole_number(num_workers, "the number of image-decoding workers", 0, 64)
    field = field_name(field, "the concepts field")
    with _extracting(samples, field) as lease:
        clip, corpus = prepare_concepts(
            samples, model, pretrained, corpus, field, template, n_segments, spatial_weight, device, overwrite
        )
        return _extract(samples, field, clip, corpus, template, n_segments, spatial_weight, batch_size,
                        num_workers, progress, lease)


def _extract(samples, field, clip, corpus, template, n_segments, spatial_weight, batch_size, num_workers,
             progress, lease):
    todo = samples.exists(field, False)
    n_todo = exact_count(todo)
    result = ExtractionResult(already_done=exact_count(samples) - n_todo)
    if n_todo == 0:
        return result
    ids, paths = todo.values(["id", "filepath"])
    extractor = ConceptExtractor(
        clip.model, concept_embeddings(clip, corpus, template), n_segments, spatial_weight
    )
    batches = image_batches(paths, clip.preprocess, batch_size, num_workers)
    stopped = lambda: (  # noqa: E731
        f"The database stopped answering while concepts were written to '{field}': the {result.computed} "
        f"samples written so far are kept; run compute_concepts again once it is back to compute the "
        f"other {n_todo - result.computed}"
    )
    with database_errors(stopped), fou.ProgressBar(total=len(ids), progress=progress) as pb:
        for indices, images, failures in batches:
            for index, error in failures.items():
                logger.warning("Skipping unreadable image %s (%s)", paths[index], error)
                result.failed[ids[index]] = error
            if images is not None:
                batch = extractor(images.to(clip.device))
                _renew(lease, field, result.computed)
                _write_batch(samples, field, [ids[i] for i in indices], batch)
                result.computed += len(indices)
            pb.update(count=len(indices) + len(failures))
    return result


def _extracting(samples, field):
    """Holds concept field ``field`` beside other extraction workers, never beside an addition of
    concepts (which rewrites every vector wider): see :mod:`fiftyone_inficond.leases`."""
    return leases.held(samples, f"concepts/{field}", lambda holder: InvalidRequest(
        f"Concepts are being added to '{field}' by {leases.describe(holder)}: compute concepts once that finishes"
    ), mode="shared")


def _renew(lease, field, written):
    try:
        lease.renew()
    except leases.LeaseHeld as held:
        raise InvalidRequest(
            f"Concepts are being added to '{field}' by {leases.describe(held.holder)}: the {written} samples "
            f"written so far are kept; compute concepts again once that finishes"
        ) from None


def prepare_concepts(
    samples,
    model=DEFAULT_MODEL,
    pretrained=None,
    corpus=None,
    field="concepts",
    template=DEFAULT_TEMPLATE,
    n_segments=16,
    spatial_weight=1.0,
    device=None,
    overwrite=False,
):
    """Validates a concept run and records it on ``field`` (or finds the same run to resume).

    Nothing is written unless every input is valid. :func:`compute_concepts` calls it; call it
    yourself before starting several workers on shards of one view, so that they all find
    the run recorded and only resume it.

    Returns:
        ``(clip, corpus)``: the loaded :class:`fiftyone_inficond.clip.ClipModel` and corpus
    """
    require_own_samples(samples, "concepts")
    field = field_name(field, "the concepts field")
    n_segments = whole_number(n_segments, "the number of segments per image (n_segments)", 1, _MAX_SEGMENTS)
    spatial_weight = number(spatial_weight, "the spatial weight", 0, 1e3)
    check_template(template)
    if exact_count(samples) == 0:
        raise InvalidRequest("The view is empty: select at least one sample to compute concepts of")
    corpus = load_corpus(corpus)
    if len(corpus.names) > MAX_CONCEPTS:
        raise InvalidRequest(f"A corpus has at most {MAX_CONCEPTS:,} concepts; this one has {len(corpus.names):,}")
    clip = model if isinstance(model, ClipModel) else load_clip(model, pretrained, device=device)
    require_distinct_prompts(clip.tokenizer, corpus.names, corpus.texts(template), clip.name)
    config = dict(
        model=clip.name,
        pretrained=clip.pretrained,
        corpus_id=corpus.id,
        concepts=list(corpus.names),
        template=template,
        grid=list(patch_grid(clip.model)),
        n_segments=n_segments,
        spatial_weight=spatial_weight,
        text_model=model_id(clip),  # where the corpus's text embeddings are cached
        # Segments keep their embeddings (any concept can be located) and masks name concepts.
        concept_masks=True,
    )
    _prepare_run(samples, field, config, overwrite)
    return clip, corpus


MAX_SHARDS = 64


def shard_count(count, samples):
    """``count`` shards for ``samples``, checked: from 1 to the number of samples (at most
    :data:`MAX_SHARDS`), so that no shard is empty and no flood of delegated operations is queued
    (a million shards of 90 samples kept queueing)."""
    allowed = max(1, min(exact_count(samples), MAX_SHARDS))
    return whole_number(count, f"the number of shards for these {exact_count(samples):,} samples", 1, allowed)


def shard(samples, index, count):
    """Shard ``index`` of ``count`` disjoint shards of ``samples``, by sample id.

    The split depends only on the ids, so workers that each take one shard of the same view
    cover it exactly once, whatever order they run in.
    """
    if not 0 <= index < count:
        raise InvalidRequest(f"Shard index must be in [0, {count}); got {index}")
    ids = [i for i in samples.values("id") if int(i, 16) % count == index]
    return samples.select(ids, ordered=True)


def _prepare_run(samples, field, config, overwrite):
    """Resumes the same run in ``field`` (also after concepts were added to it), or records a new
    one and declares its fields."""
    stored = run_config(samples, field, CONCEPTS_METHOD)
    if stored is not None and fingerprint(stored, _RESUMABLE) == fingerprint(config, _RESUMABLE):
        require_run(samples, field, CONCEPTS_METHOD, "concepts")  # an unfinished addition is finished first
        return
    claim_field(samples, field, CONCEPTS_METHOD, overwrite, what="concepts")
    dataset = dataset_of(samples)
    dataset.add_sample_field(field, fo.VectorField)
    dataset.add_sample_field(
        segments_field(field), fo.EmbeddedDocumentField, embedded_doc_type=fo.Segmentation
    )
    # Declared so that FiftyOne decodes the arrays it stores (npy bytes) when read.
    dataset.add_sample_field(f"{segments_field(field)}.embeddings", fo.ArrayField)
    dataset.add_sample_field(f"{segments_field(field)}.segment_map", fo.ArrayField)
    record_run(samples, field, CONCEPTS_METHOD, **config)
    name_concepts(dataset, field, config["concepts"])


def name_concepts(dataset, field, names):
    """Names and colours the concept map's values in the App: hovering a segment says "wing",
    not "14", and each concept keeps its own colour (the field's entry of the dataset's colour
    scheme, and colouring by value unless the scheme chose otherwise; the rest is left as it is)."""
    dataset = fresh_dataset(dataset)
    path = segments_field(field)
    dataset.mask_targets = {**dataset.mask_targets, path: {i + 1: name for i, name in enumerate(names)}}
    scheme = dataset.app_config.color_scheme or fo.ColorScheme()
    colours = [{"intTarget": i + 1, "color": _colour(i)} for i in range(len(names))]
    scheme.fields = [f for f in scheme.fields or [] if f.get("path") != path] + [
        {"path": path, "maskTargetsColors": colours}
    ]
    scheme.color_by = scheme.color_by or "value"  # the App colours masks by target only by value
    dataset.app_config.color_scheme = scheme
    dataset.save()


def _colour(i):
    """Well-separated hues for neighbouring columns (golden-angle steps)."""
    hue = (i * 0.618033988749895) % 1
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return f"#{round(255 * red):02x}{round(255 * green):02x}{round(255 * blue):02x}"


def _write_batch(samples, field, ids, batch):
    """Writes segments first: a sample counts as done once its vector lands, so a worker
    killed between the two writes leaves it to be recomputed, never half-written."""
    dataset = dataset_of(samples)
    segmentations = [
        fo.Segmentation(
            mask=concept_map(segment_map, concepts),
            segment_map=segment_map,
            concepts=concepts,
            similarities=similarities,
            embeddings=embeddings,
        )
        for segment_map, concepts, similarities, embeddings in zip(
            batch.segment_maps, batch.segment_concepts, batch.segment_similarities, batch.segment_embeddings
        )
    ]
    dataset.set_values(segments_field(field), dict(zip(ids, segmentations)), key_field="id")
    dataset.set_values(field, dict(zip(ids, batch.vectors)), key_field="id")
