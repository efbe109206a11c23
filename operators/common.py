"""Pieces every operator shares: the target view and progress reporting."""

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


def target_view(ctx):
    return ctx.target_view()


def progress_reporter(ctx, label):
    """A FiftyOne progress callback that reports to the operation (App bar or delegated run)."""

    def report(bar):
        ctx.set_progress(progress=bar.progress, label=f"{label}: {bar.iteration}/{bar.total}")

    return report


def form(inputs, label, description=None):
    return types.Property(inputs, view=types.View(label=label, description=description))
