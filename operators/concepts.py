"""Compute concepts: immediate, delegated, or as shards run by several delegated workers."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.extraction import DEFAULT_MODEL, compute_concepts, prepare_concepts, shard

from .common import add_target_view, form, operator_config, pretrained_param, progress_reporter, server_file
from .ui import PLUGIN

CORPUS_SOURCES = ("default", "file", "list")


class ComputeConcepts(foo.Operator):
    @property
    def config(self):
        return operator_config(
            "compute_concepts", "compute concepts", "Concept vectors of images with an open_clip model", True
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_target_view(ctx, inputs, "Compute concepts of")
        inputs.str("model", label="open_clip model", default=DEFAULT_MODEL)
        inputs.str(
            "pretrained",
            label="Pretrained tag or checkpoint path",
            description="Empty: random initialisation (concepts then mean nothing)",
        )
        inputs.enum("corpus_source", CORPUS_SOURCES, default="default", label="Concept corpus",
                    description="default: Broden (1,153 concepts)")
        source = ctx.params.get("corpus_source", "default")
        if source == "file":
            inputs.str("corpus_path", label="Corpus file (one concept per line)", required=True)
        elif source == "list":
            inputs.list("corpus", types.String(), label="Concepts", required=True)
        inputs.str("field", default="concepts", label="Field")
        inputs.int("batch_size", default=32, label="Batch size")
        inputs.int("num_shards", default=1, label="Shards",
                   description="Split the work into this many delegated operations for parallel workers")
        inputs.bool("overwrite", default=False, label="Overwrite another run in this field")
        return form(inputs, "Compute concepts")

    def execute(self, ctx):
        params = ctx.params
        num_shards = params.get("num_shards", 1) or 1
        if num_shards > 1 and params.get("shard_index") is None:
            return {"queued": queue_shards(ctx, num_shards)}
        view = ctx.target_view()
        if num_shards > 1:
            view = shard(view, params["shard_index"], num_shards)
        result = compute_concepts(
            view,
            model=params.get("model") or DEFAULT_MODEL,
            pretrained=pretrained_param(ctx, params.get("pretrained")),
            corpus=_corpus(ctx, params),
            field=params.get("field", "concepts"),
            batch_size=params.get("batch_size", 32),
            overwrite=params.get("overwrite", False),
            progress=progress_reporter(ctx, "concepts"),
        )
        return {"computed": result.computed, "already_done": result.already_done, "failed": result.failed}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("computed", label="Computed")
        outputs.int("already_done", label="Already done (resumed)")
        outputs.obj("failed", label="Unreadable images")
        return types.Property(outputs)


def _corpus(ctx, params):
    source = params.get("corpus_source", "default")
    if source not in CORPUS_SOURCES:
        raise InvalidRequest(f"The corpus source must be one of {CORPUS_SOURCES}; got '{source}'")
    if source == "file":
        return server_file(ctx, params.get("corpus_path") or "", "corpus file")
    if source == "list":
        return params["corpus"]
    return None


def queue_shards(ctx, num_shards):
    """Records the run, then queues one delegated operation per shard; returns their ids.

    Recording first means the shards only ever resume the same run, in any order.
    """
    params = ctx.params
    view = ctx.target_view()
    prepare_concepts(
        view,
        model=params.get("model") or DEFAULT_MODEL,
        pretrained=pretrained_param(ctx, params.get("pretrained")),
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
