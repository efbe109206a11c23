"""Compute concepts: immediate, delegated, or as shards run by several delegated workers."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.corpus import packaged_corpus
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.extraction import DEFAULT_MODEL, compute_concepts, prepare_concepts, shard, shard_count
from fiftyone_inficond.projection import concept_projection

from .common import (
    add_target_view,
    existing_file,
    file_input,
    form,
    message_output,
    model_input,
    model_param,
    operator_config,
    pretrained_param,
    progress_reporter,
    refusal,
    weights_input,
    with_given,
)
from .ui import PLUGIN, dropdown

# The corpora a user picks from: the shipped ones by name, a file on the server, or a typed list.
# "default" (Broden) stays accepted from Python callers.
CORPORA = {"broden": "Broden (1,153 concepts)", "world": "The synthetic world's 40 concepts",
           "file": "A file on the server, one concept per line", "list": "Concepts you type"}
CORPUS_SOURCES = ("default", *CORPORA)


class ComputeConcepts(foo.Operator):
    @property
    def config(self):
        return operator_config(
            "compute_concepts", "compute concepts", "Concept vectors of images with an open_clip model", True
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_target_view(ctx, inputs, "Compute concepts of")
        model_input(ctx, inputs, DEFAULT_MODEL)
        weights_input(ctx, inputs, ctx.params.get("model") or DEFAULT_MODEL)
        corpora = with_given(ctx, "corpus_source", CORPORA)
        inputs.enum("corpus_source", list(corpora), default="broden", label="Concept corpus", view=dropdown(corpora))
        source = ctx.params.get("corpus_source", "broden")
        if source == "file":
            file_input(ctx, inputs, "corpus_path", "corpus file", "Corpus file (one concept per line)")
        elif source == "list":
            inputs.list("corpus", types.String(), label="Concepts", required=True)
        inputs.str("field", default="concepts", label="Field")
        inputs.int("batch_size", default=32, label="Batch size")
        inputs.int("num_shards", default=1, label="Shards",
                   description="Split the work into this many delegated operations for parallel workers",
                   **refusal(ctx.params.get("num_shards"), shard_count, ctx.params.get("num_shards"),
                             ctx.target_view()))
        inputs.bool("overwrite", default=False, label="Overwrite another run in this field")
        return form(inputs, "Compute concepts")

    def execute(self, ctx):
        params = ctx.params
        num_shards = params.get("num_shards", 1) or 1
        if params.get("shard_index") is None:
            num_shards = shard_count(num_shards, ctx.target_view())
            if num_shards > 1:
                return {"queued": queue_shards(ctx, num_shards)}
        view = ctx.target_view()
        if num_shards > 1:
            view = shard(view, params["shard_index"], num_shards)
        model = model_param(ctx, params.get("model") or DEFAULT_MODEL)
        pretrained = pretrained_param(ctx, params.get("pretrained"), model, params.get("checkpoint"))
        field = params.get("field", "concepts")
        result = compute_concepts(
            view,
            model=model,
            pretrained=pretrained,
            corpus=_corpus(ctx, params),
            field=field,
            batch_size=params.get("batch_size", 32),
            overwrite=params.get("overwrite", False),
            progress=progress_reporter(ctx, "concepts"),
        )
        if num_shards == 1:  # the concept map's first projection, kept in the database for the panel to read
            ctx.set_progress(progress=1.0, label="drawing the concept map")
            concept_projection(view, field)
        return {"computed": result.computed, "already_done": result.already_done, "failed": result.failed,
                "message": _answer(result, field, pretrained)}

    def resolve_output(self, ctx):
        return message_output("Concepts")


def _answer(result, field, pretrained):
    """What a compute wrote, where, what it could not read, and what to do next, in words."""
    message = f"Concept vectors of {result.computed:,} samples written to **{field}**"
    if result.already_done:
        message += f" ({result.already_done:,} were already there: resumed)"
    if result.failed:
        sample, error = next(iter(result.failed.items()))
        message += (f"; {len(result.failed):,} images could not be read, so their samples have none "
                    f"(the first, sample {sample}: {error})")
    if pretrained is None:
        message += (". Without weights these concepts mean nothing: compute them again with the model's "
                    "pretrained weights or a checkpoint before you trust a student")
    return message + ". Next: import teacher scores, then train students"


def _corpus(ctx, params):
    source = params.get("corpus_source", "broden")
    if source not in CORPUS_SOURCES:
        raise InvalidRequest(f"The corpus source must be one of {CORPUS_SOURCES}; got '{source}'")
    if source == "file":
        return existing_file(ctx, params.get("corpus_path"), "corpus file")
    if source == "list":
        return params["corpus"]
    return packaged_corpus(source) if source == "world" else None


def queue_shards(ctx, num_shards):
    """Records the run, then queues one delegated operation per shard; returns their ids.

    Recording first means the shards only ever resume the same run, in any order.
    """
    params = ctx.params
    view = ctx.target_view()
    model = model_param(ctx, params.get("model") or DEFAULT_MODEL)
    prepare_concepts(
        view,
        model=model,
        pretrained=pretrained_param(ctx, params.get("pretrained"), model, params.get("checkpoint")),
        corpus=_corpus(ctx, params),
        field=params.get("field", "concepts"),
        overwrite=params.get("overwrite", False),
    )
    ids = []
    for index in range(num_shards):
        shard_params = {**params, "shard_index": index, "overwrite": False}
        result = foo.execute_operator(
            f"{PLUGIN}/compute_concepts",
            ctx=dict(view=view.view(), params=shard_params),
            request_delegation=True,
        )
        ids.append(str(result.result["id"]))
    return ids
