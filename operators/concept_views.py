"""Where a concept is and which concepts there are: overlay, gallery, search and add.

The same actions as the concept map and concept detail panels, callable from Python with
``execute_operator`` and from the operator browser; choices come from the runs (concept runs,
their concepts, student runs), never typed blind.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.fiftyone_api import run_keys
from fiftyone_inficond.new_concepts import add_concepts, search_concepts
from fiftyone_inficond.runs import CONCEPTS_METHOD, run_config
from fiftyone_inficond.students.evaluation import SPLITS
from fiftyone_inficond.students.registry import open_students

from .common import add_target_view, form, message_output, operator_config, run_key_input
from .ui import heatmap_legend, share_of, show_overlay


def _concept_field_input(ctx, inputs):
    """A dropdown of the dataset's concept runs; the chosen one's config (or ``None``)."""
    fields = run_keys(ctx.dataset, CONCEPTS_METHOD)
    inputs.enum("field", fields, default=fields[0] if fields else None, label="Concept run", required=True,
                view=types.DropdownView(choices=[types.Choice(f, label=f) for f in fields]))
    field = ctx.params.get("field") or (fields[0] if fields else None)
    return run_config(ctx.dataset, field, CONCEPTS_METHOD) if field in fields else None


def _concept_input(inputs, names):
    inputs.enum("concept", names, label="Concept", required=True,
                view=types.AutocompleteView(choices=[types.Choice(n, label=n) for n in names]))


class ShowConceptOverlay(foo.Operator):
    @property
    def config(self):
        return operator_config("show_concept_overlay", "show concept overlay",
                               "Draw where a concept is (its heatmap) on the samples")

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_target_view(ctx, inputs, "Draw on")
        config = _concept_field_input(ctx, inputs)
        if config is not None:
            _concept_input(inputs, list(config["concepts"]))
        return form(inputs, "Show a concept's heatmap")

    def execute(self, ctx):
        field = ctx.params.get("field", "concepts")
        shown = show_overlay(ctx, ctx.target_view(), ctx.params.get("concept"), field)
        message = (f"'{shown['concept']}' drawn on {shown['samples']:,} samples in '{shown['field']}'"
                   + (f" (removed from {shown['cleared']:,} others)" if shown["cleared"] else "")
                   + f": {heatmap_legend(shown)}")
        return {**shown, "message": message}

    def resolve_output(self, ctx):
        return message_output("Shown")


class ShowConceptSamples(foo.Operator):
    @property
    def config(self):
        return operator_config("show_concept_samples", "show concept samples",
                               "The samples where a concept is most present, with its heatmap")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = run_key_input(ctx, inputs)
        if key is not None:
            run = open_students(ctx.dataset, key)
            _concept_input(inputs, run.concepts)
            inputs.enum("split", run.splits, default=run.splits[0], label="Samples",
                        view=types.DropdownView(choices=[types.Choice(s, label=SPLITS[s]) for s in run.splits]))
        inputs.int("n", min=1, label="How many samples", description="By default the top quarter, at most 100")
        return form(inputs, "Show a concept's samples")

    def execute(self, ctx):
        run = open_students(ctx.dataset, ctx.params["key"])
        concept, split = ctx.params.get("concept"), ctx.params.get("split", run.splits[0])
        view = run.presence_view(concept, split, ctx.params.get("n"))
        shown = show_overlay(ctx, view, concept, run.config["concepts_field"], set_view=True)
        message = (f"The {share_of(shown['samples'], run.split_size(split), split)} where '{concept}' is "
                   f"most present, most first; {heatmap_legend(shown)}")
        return {"sample_ids": view.values("id"), "message": message}

    def resolve_output(self, ctx):
        return message_output("Shown")


class SearchConcepts(foo.Operator):
    @property
    def config(self):
        return operator_config("search_concepts", "search concepts", "Find corpus concepts by meaning")

    def resolve_input(self, ctx):
        inputs = types.Object()
        _concept_field_input(ctx, inputs)
        inputs.str("phrase", label="Words or a phrase", required=True)
        inputs.int("n", default=10, min=1, max=1000, label="How many")
        return form(inputs, "Search concepts")

    def execute(self, ctx):
        found = search_concepts(ctx.dataset, ctx.params.get("phrase"), ctx.params.get("n", 10),
                                ctx.params.get("field", "concepts"))
        lines = "\n".join(f"{i + 1}. **{hit['concept']}** ({hit['similarity']:.3f})" for i, hit in enumerate(found))
        return {"concepts": found, "message": f"Nearest to '{ctx.params.get('phrase')}':\n\n{lines}"}

    def resolve_output(self, ctx):
        return message_output("Found")


class AddConcepts(foo.Operator):
    @property
    def config(self):
        return operator_config("add_concepts", "add concepts",
                               "Add concepts to a concept run without encoding any image again", delegated=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        _concept_field_input(ctx, inputs)
        inputs.list("names", types.String(), label="New concepts", required=True,
                    view=types.AutocompleteView(choices=[], allow_user_input=True))
        return form(inputs, "Add concepts")

    def execute(self, ctx):
        field = ctx.params.get("field", "concepts")
        added = add_concepts(ctx.dataset, ctx.params.get("names"), field)
        message = (f"Added {', '.join(repr(n) for n in added['added'])} to '{field}' ({added['concepts']:,} concepts, "
                   f"{added['samples']:,} samples): train students again to let them use "
                   f"{'it' if len(added['added']) == 1 else 'them'}")
        return {**added, "message": message}

    def resolve_output(self, ctx):
        return message_output("Added")
