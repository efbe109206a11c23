"""Pieces every operator shares: config, target-view input, progress reporting, forms and the
server files an App user may name. What panels share with operators is in ``ui.py``."""

import os

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.registry import list_student_runs, open_students

from .ui import dropdown, entry_minute

# The plugin's settings are declared as secrets in fiftyone.yml, FiftyOne's way: a deployment keeps
# them as plugin secrets, and open-source FiftyOne reads each from the App server's environment
# variable of that name (see setting()).
# Folders on the App server whose files App users may name (corpora, score files, checkpoints),
# separated like PATH. Unset: App users can name no server file; Python callers of the library
# are not confined.
SERVER_DIRS_VARIABLE = "INFICOND_SERVER_DIRS"
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def add_target_view(ctx, inputs, action, default=None):
    """The samples an operator acts on; ``default`` "DATASET" for actions meant for every sample
    (FiftyOne's default is the most selective choice: the current view or selection)."""
    inputs.view_target(
        ctx,
        default_target=default,
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


def operator_config(name, label, description, delegated=False, dynamic=True):
    """An ``OperatorConfig``, with a dynamic form unless it has no inputs (the App shows a
    dynamic form without inputs as an empty dialog); ``delegated`` work may also be scheduled, but
    runs now by default: a scheduled operation waits for a worker (``fiftyone delegated launch``),
    and the App closed the dialog with the job queued, without a word, where none ran."""
    return foo.OperatorConfig(
        name=name,
        label=f"InFiConD: {label}",
        description=description,
        dynamic=dynamic,
        allow_immediate_execution=True,
        allow_delegated_execution=delegated,
        default_choice_to_delegated=False,
    )


def setting(ctx, name):
    """The plugin setting ``name`` (declared under ``secrets:`` in fiftyone.yml): the plugin secret
    FiftyOne resolved for this operation, else the environment variable of that name."""
    value = ctx.secrets[name]
    value = getattr(value, "value", value)  # resolved on first access, FiftyOne gives the secret, not its value
    return value or os.environ.get(name)


def server_file(ctx, path, what):
    """``path`` if it lies, symbolic links resolved, inside a folder of ``INFICOND_SERVER_DIRS``."""
    folders = [f for f in (setting(ctx, SERVER_DIRS_VARIABLE) or "").split(os.pathsep) if f]
    if not folders:
        raise InvalidRequest(
            f"Reading a {what} from the server is turned off: ask whoever runs the App to list "
            f"the allowed folders in {SERVER_DIRS_VARIABLE}"
        )
    real = os.path.realpath(str(path))
    if not any(os.path.commonpath([real, os.path.realpath(f)]) == os.path.realpath(f) for f in folders):
        raise InvalidRequest(
            f"The {what} '{path}' is outside the folders this App may read ({os.pathsep.join(folders)}): "
            f"put it in one of them"
        )
    return real


def pretrained_param(ctx, value):
    """A pretrained tag as given, or a checkpoint path confined like :func:`server_file`."""
    if not value:
        return None
    looks_like_path = os.sep in value or value.endswith(_CHECKPOINT_SUFFIXES)
    return server_file(ctx, value, "checkpoint file") if looks_like_path else value


def message_output(label="Result"):
    """An output view showing the ``message`` an operator returns (what changed, in words)."""
    outputs = types.Object()
    outputs.str("message", label=label, view=types.MarkdownView())
    return types.Property(outputs)


def run_key_input(ctx, inputs):
    """A dropdown of the dataset's student runs; the chosen key, or ``None`` before a choice."""
    keys = list_student_runs(ctx.dataset)
    inputs.enum("key", keys, view=dropdown({k: k for k in keys}), label="Student run", required=True,
                default=keys[0] if keys else None)
    key = ctx.params.get("key", keys[0] if keys else None)
    return key if key in keys else None


def revision_input(ctx, inputs, key, label):
    """A dropdown of run ``key``'s revisions, newest first, each with what it was and who saved it."""
    entries = open_students(ctx.dataset, key).history[::-1]
    labels = {e["revision"]: f"{e['revision']}: {e['kind']} by {e['user']}, {entry_minute(e['time'])}"
              for e in entries}
    inputs.enum("revision", list(labels), view=dropdown(labels), label=label,
                default=entries[0]["revision"] if entries else None)


def refusal(value, check, *args):
    """The ``invalid`` and ``error_message`` of a form input whose ``value`` (unless not typed yet)
    ``check(*args)`` refuses: the library's sentence, shown at the input."""
    if value is None:
        return {}
    try:
        check(*args)
    except InvalidRequest as refused:
        return {"invalid": True, "error_message": str(refused)}
    return {}
