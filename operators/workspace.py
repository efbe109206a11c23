"""Open the InFiConD workspace on any dataset: the layout saved on it and shown at once."""

import fiftyone.operators as foo

from fiftyone_inficond.workspace import WORKSPACE, save_workspace

from .common import message_output, operator_config


def open_workspace(ctx):
    """Saves the workspace on the dataset and has the App show it; the sentence that says so."""
    save_workspace(ctx.dataset)
    if not ctx.delegated:  # a delegated run has no App to lay out
        ctx.ops.set_spaces(name=WORKSPACE)
    return (f"The InFiConD workspace is open: the panels are tabs above the grid, provenance beside it. It is saved "
            f"on **{ctx.dataset.name}** as '{WORKSPACE}': FiftyOne's workspace menu opens it again")


class OpenWorkspace(foo.Operator):
    @property
    def config(self):
        return operator_config("open_workspace", "open workspace",
                               "The InFiConD panels laid out above the grid, saved on this dataset", dynamic=False)

    def execute(self, ctx):
        return {"workspace": WORKSPACE, "message": open_workspace(ctx)}

    def resolve_output(self, ctx):
        return message_output("Workspace")
