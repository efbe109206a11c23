"""Pieces every operator shares: config, target-view input, progress reporting, forms."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

PLUGIN = "@inficond/inficond"


def add_target_view(ctx, inputs, action):
    inputs.view_target(
        ctx,
        action_description=action,
        dataset_description=f"{action} the entire dataset",
        current_view_description=f"{action} the current view",
        selected_samples_description=f"{action} the selected samples",
    )


def progress_reporter(ctx, label):
    """A FiftyOne progress callback that reports to the operation (App bar or delegated run)."""

    def report(bar):
        ctx.set_progress(progress=bar.progress, label=f"{label}: {bar.iteration}/{bar.total}")

    return report


def form(inputs, label, description=None):
    return types.Property(inputs, view=types.View(label=label, description=description))


def operator_config(name, label, description, delegated=False):
    """An ``OperatorConfig`` with a dynamic form; ``delegated`` work may be scheduled and
    is scheduled by default."""
    return foo.OperatorConfig(
        name=name,
        label=f"InFiConD: {label}",
        description=description,
        dynamic=True,
        allow_immediate_execution=True,
        allow_delegated_execution=delegated,
        default_choice_to_delegated=delegated,
    )
