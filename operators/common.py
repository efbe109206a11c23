"""Pieces every operator shares: config, target-view input, progress reporting, forms and the
server files an App user may name. What panels share with operators is in ``ui.py``."""

import os

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.clip import model_names, pretrained_tags
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.labels import LABEL_TYPES
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
CHECKPOINT = "checkpoint file"  # the weights choice whose file FiftyOne's file explorer picks
NONE = "(none)"  # the choice of no weights, no ground truth, no tag: the App shows no label for ""


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
    """``path`` (as typed, or as FiftyOne's file explorer gives it), symbolic links resolved, if this
    App may read it: inside a folder of ``INFICOND_SERVER_DIRS`` when that is set; without it, anywhere
    in an App of one person (FiftyOne's embedded database: whoever uses the App runs its server), and
    nowhere in an App whose database is shared (``FIFTYONE_DATABASE_URI``), whose users are others."""
    path = file_path(path)
    if not path:
        raise InvalidRequest(f"Choose the {what}")
    folders = [f for f in (setting(ctx, SERVER_DIRS_VARIABLE) or "").split(os.pathsep) if f]
    real = os.path.realpath(str(path))
    if not folders:
        if fo.config.database_uri:
            raise InvalidRequest(
                f"This App's database is shared, so reading a {what} from its server is turned off: ask whoever "
                f"runs the App to list the folders its users may read in {SERVER_DIRS_VARIABLE}"
            )
        return real
    if not any(os.path.commonpath([real, os.path.realpath(f)]) == os.path.realpath(f) for f in folders):
        raise InvalidRequest(
            f"The {what} '{path}' is outside the folders this App may read ({os.pathsep.join(folders)}): "
            f"put it in one of them"
        )
    return real


def file_path(value):
    """A server path from a form: typed (a string, also from Python) or chosen with FiftyOne's file
    explorer (``{"absolute_path": ...}``)."""
    return value.get("absolute_path") if isinstance(value, dict) else value


def model_param(ctx, value):
    """The open_clip model a form names: one open_clip knows (:func:`model_names`), or a local
    folder (``local-dir:``) confined like :func:`server_file`; never ``hf-hub:``, a download the App
    server would start for whoever typed it."""
    if value.startswith("hf-hub:"):
        raise InvalidRequest("This App's server does not download models: choose one of open_clip's models and "
                             "give its weights as a checkpoint file")
    if value.startswith("local-dir:"):
        return "local-dir:" + server_file(ctx, value.removeprefix("local-dir:"), "model folder")
    if value not in model_names():
        raise InvalidRequest(f"'{value}' is not one of open_clip's models: choose one from the list")
    return value


def pretrained_param(ctx, value, model, checkpoint=None):
    """What ``pretrained=`` takes from a form for open_clip ``model``: ``None`` (no weights), one of
    its pretrained tags, or a checkpoint file confined like :func:`server_file` (anything else names a
    file, typed as ``value``, or chosen as ``checkpoint`` when the form's weights say
    :data:`CHECKPOINT`): open_clip itself would open a name it does not know as a file, from the App
    server's working directory."""
    if value == CHECKPOINT:
        return checkpoint_file(ctx, checkpoint)
    if value in (None, "", NONE):
        return None
    return value if value in pretrained_tags(model) else checkpoint_file(ctx, value)


def existing_file(ctx, value, what):
    """:func:`server_file`, refused unless the file is there: what a form checks before Execute."""
    real = server_file(ctx, value, what)
    if not os.path.isfile(real):
        raise InvalidRequest(f"There is no file '{file_path(value)}' on the server: choose an existing {what}")
    return real


def checkpoint_file(ctx, value, what="checkpoint file"):
    """A checkpoint file this App may read, refused unless it exists with a checkpoint's suffix."""
    real = existing_file(ctx, value, what)
    if not real.lower().endswith(_CHECKPOINT_SUFFIXES):
        raise InvalidRequest(f"'{file_path(value)}' is not a checkpoint ({', '.join(_CHECKPOINT_SUFFIXES)}): "
                             "choose the model's weights file")
    return real


def weights_input(ctx, inputs, model, label="Weights"):
    """The weights of open_clip ``model`` as choices: none (random, meaningless concepts), each
    pretrained tag open_clip knows for it (from its cache: the server has no internet), or a
    checkpoint file chosen with FiftyOne's file explorer, checked here before Execute."""
    tags = pretrained_tags(model)
    choices = {NONE: "None: random initialisation (its concepts mean nothing)",
               **{tag: f"{tag} (open_clip's cache)" for tag in tags}, CHECKPOINT: "A checkpoint file on the server"}
    choices = with_given(ctx, "pretrained", choices)
    inputs.enum("pretrained", list(choices), default=NONE, label=label, view=dropdown(choices))
    if ctx.params.get("pretrained") == CHECKPOINT:
        file_input(ctx, inputs, "checkpoint", "checkpoint file", "Checkpoint file", check=checkpoint_file)


def file_input(ctx, inputs, name, what, label, check=existing_file, description=None):
    """A server file chosen with FiftyOne's file explorer (typed, from Python), refused in the form by
    ``check(ctx, value, what)`` before Execute, the chosen value kept."""
    chosen = ctx.params.get(name)
    checked = refusal(chosen or None, check, ctx, chosen, what)
    kwargs = dict(required=True, label=label, description=description, **checked)
    if isinstance(chosen, str):  # a path a Python caller gave: FiftyOne refuses a string for a file input
        inputs.str(name, **kwargs)
    else:
        inputs.file(name, view=types.FileExplorerView(choose_dir=False, button_label=f"Choose a {what}"), **kwargs)


def model_input(ctx, inputs, default):
    """open_clip's models (this package's small ones included) as a dropdown."""
    models = with_given(ctx, "model", {name: name for name in model_names()})
    inputs.enum("model", list(models), default=default, label="open_clip model",
                view=dropdown(models))


def with_given(ctx, name, choices):
    """``choices`` and, when a caller gave ``name`` a value they lack (a Python caller's checkpoint path,
    or a field the library will refuse in its own words), that value too: FiftyOne refuses a value
    outside an input's choices before the operator runs, with no word of what to do."""
    given = ctx.params.get(name)
    if isinstance(given, str) and given and given not in choices:
        return {**choices, given: given}
    return choices


def message_output(label="Result"):
    """An output view showing the ``message`` an operator returns (what changed, in words)."""
    outputs = types.Object()
    outputs.str("message", label=label, view=types.MarkdownView())
    return types.Property(outputs)


def note_input(inputs):
    """The note a tune, a revert or a note of its own keeps in the run's history."""
    inputs.str("note", label="Note", description="Why, in a line (kept in the run's history)")


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


def choice_input(ctx, inputs, name, values, label, default=None, none=None, description=None, missing=None):
    """A dropdown of ``values`` the dataset knows (fields, tags, runs) where a user would otherwise type;
    ``none``, when given, labels choosing none (the value :data:`NONE`, read by :func:`chosen`). Without
    values and without ``none``, the form says what is missing instead, and ``missing``: what to do.
    Not required: a Python caller may leave the default."""
    choices = with_given(ctx, name, {**({NONE: none} if none else {}), **{value: value for value in values}})
    if not choices:
        inputs.view(f"{name}_missing", types.Warning(label=f"{label}: none yet", description=missing or description))
        return
    default = default if default in choices else next(iter(choices))
    inputs.enum(name, list(choices), default=default, label=label, description=description, view=dropdown(choices))


def chosen(params, name, default=None):
    """The value of a :func:`choice_input`: ``None`` where none was chosen (or given: ``""``, ``None``)."""
    value = params.get(name, default)
    return None if value in (None, "", NONE) else value


def label_fields(dataset):
    """The dataset's fields of labels a teacher or a ground truth can come from."""
    return list(dataset.get_field_schema(embedded_doc_type=list(LABEL_TYPES)))
