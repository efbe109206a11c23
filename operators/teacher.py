"""Import or compute teacher scores from a score file, a label field, a zoo model or open_clip.

Loading a zoo model downloads its weights onto the server, so App users may choose only the zoo
models the server lists in ``INFICOND_ZOO_MODELS``, as they may name only the server files it
allows (``INFICOND_SERVER_DIRS``)."""


import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.extraction import DEFAULT_MODEL
from fiftyone_inficond.runs import TEACHER_METHOD, require_free_field
from fiftyone_inficond.teacher import teacher_from_clip, teacher_from_file, teacher_from_labels, teacher_from_model

from .common import (
    add_target_view,
    choice_input,
    existing_file,
    file_input,
    form,
    label_fields,
    message_output,
    model_input,
    model_param,
    operator_config,
    pretrained_param,
    refusal,
    setting,
    weights_input,
)
from .ui import dropdown

SOURCES = {"labels": "a label field of a model's predictions", "file": "a JSON score file on the server",
           "zoo": "a FiftyOne zoo model", "clip": "open_clip, zero-shot"}
# The FiftyOne zoo models App users may load as teachers, separated by commas. Unset: the zoo
# source is off in the App; Python callers of the library are not confined.
ZOO_MODELS_VARIABLE = "INFICOND_ZOO_MODELS"
ZOO_OFF = (f"Zoo teachers are turned off in this App: ask whoever runs it to list the FiftyOne zoo models "
           f"App users may load in {ZOO_MODELS_VARIABLE} (comma-separated)")


class ImportTeacherScores(foo.Operator):
    @property
    def config(self):
        return operator_config(
            "import_teacher_scores",
            "import teacher scores",
            "Per-class teacher probabilities from a file, a label field or a model",
            True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_target_view(ctx, inputs, "Score")
        inputs.enum("source", list(SOURCES), default="labels", label="Source", view=dropdown(SOURCES))
        source = ctx.params.get("source", "labels")
        if source == "file":
            file_input(ctx, inputs, "path", "teacher score file", "JSON score file",
                       description='keys "classes", "files", "scores"')
        elif source == "labels":
            choice_input(ctx, inputs, "label_field", label_fields(ctx.dataset), "Label field",
                         description="A model's predictions: Classification, Classifications or Detections with "
                                     "confidences")
        elif source == "zoo":
            allowed = allowed_zoo_models(ctx)
            if allowed:
                inputs.enum("model_name", allowed, label="FiftyOne zoo model", required=True,
                            view=dropdown({name: name for name in allowed}))
            else:
                inputs.view("zoo_off", types.Warning(label="Zoo teachers are off", description=ZOO_OFF))
        else:
            model_input(ctx, inputs, DEFAULT_MODEL)
            weights_input(ctx, inputs, ctx.params.get("model") or DEFAULT_MODEL)
        if source != "file":
            inputs.list("classes", types.String(), label="Classes", required=source == "clip")
        field, overwrite = ctx.params.get("field", "teacher"), bool(ctx.params.get("overwrite"))
        inputs.str("field", default="teacher", label="Field", **refusal(
            field, require_free_field, ctx.target_view(), field, TEACHER_METHOD, overwrite, "teacher scores"))
        inputs.bool("overwrite", default=False, label="Overwrite an earlier teacher in this field")
        return form(inputs, "Teacher scores")

    def execute(self, ctx):
        params = ctx.params
        view = ctx.target_view()
        common = dict(field=params.get("field", "teacher"), overwrite=params.get("overwrite", False))
        source = params.get("source", "file")
        if source == "file":
            written = teacher_from_file(view, existing_file(ctx, params.get("path"), "teacher score file"), **common)
        elif source == "labels":
            written = teacher_from_labels(view, params["label_field"], classes=params.get("classes"), **common)
        elif source == "zoo":
            model = load_allowed_zoo_model(ctx, params.get("model_name"))
            written = teacher_from_model(view, model, classes=params.get("classes"), **common)
        elif source == "clip":
            model = model_param(ctx, params.get("model") or DEFAULT_MODEL)
            written = teacher_from_clip(
                view,
                params["classes"],
                model=model,
                pretrained=pretrained_param(ctx, params.get("pretrained"), model, params.get("checkpoint")),
                **common,
            )
        else:
            raise InvalidRequest(f"The teacher source must be one of {list(SOURCES)}; got '{source}'")
        message = (f"Teacher scores of {written:,} samples written to **{common['field']}** ({SOURCES[source]}): "
                   f"train students on them next")
        return {"written": written, "message": message}

    def resolve_output(self, ctx):
        return message_output("Teacher scores")


def allowed_zoo_models(ctx):
    """The zoo models listed in ``INFICOND_ZOO_MODELS``, in its order."""
    return [name.strip() for name in (setting(ctx, ZOO_MODELS_VARIABLE) or "").split(",") if name.strip()]


def load_allowed_zoo_model(ctx, name):
    """Zoo model ``name``, loaded (and downloaded) only if ``INFICOND_ZOO_MODELS`` lists it."""
    allowed = allowed_zoo_models(ctx)
    if not allowed:
        raise InvalidRequest(ZOO_OFF)
    if name not in allowed:
        raise InvalidRequest(
            f"The zoo model {name!r} is not one this App may load ({', '.join(allowed)}): choose one of those, "
            f"or ask whoever runs the App to add it to {ZOO_MODELS_VARIABLE}"
        )
    import fiftyone.zoo as foz

    return foz.load_zoo_model(name)
