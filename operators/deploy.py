"""Export a student run's revision to the server's export folder, and apply an export to samples.

Both forms check the names typed as the library will (an export name that is not a new folder or an
export to overwrite, a label field that holds something else) and show the library's refusal at
the input, before anything runs.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_inficond.deploy.export import EXPORT_DIR_ENV, check_export_target, export_root, export_students
from fiftyone_inficond.deploy.loading import list_exports
from fiftyone_inficond.deploy.model import apply_export
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import exact_count
from fiftyone_inficond.labels import require_prediction_field

from .common import (
    add_target_view,
    form,
    message_output,
    operator_config,
    progress_reporter,
    refusal,
    revision_input,
    run_key_input,
    setting,
)
from .ui import dropdown


def export_folder(ctx):
    """The server's export folder: the plugin's ``INFICOND_EXPORT_DIR`` setting, or the default."""
    return export_root(setting(ctx, EXPORT_DIR_ENV))


class ExportStudents(foo.Operator):
    @property
    def config(self):
        return operator_config("export_students", "export students",
                               "Save a revision of a student run as a model that predicts without FiftyOne")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key, root = run_key_input(ctx, inputs), export_folder(ctx)
        if key is not None:
            revision_input(ctx, inputs, key, "Revision to export")
            revision = ctx.params.get("revision")
            name, overwrite = ctx.params.get("name"), ctx.params.get("overwrite", False)
            inputs.str("name", label="Export name", required=True,
                       default=f"{ctx.dataset.name}-{key}" + ("" if revision is None else f"-rev{revision}"),
                       description=f"A folder of {root}",
                       **refusal(name, check_export_target, name, root, overwrite))
        inputs.float("prune", default=0.0, label="Leave out concepts whose weights are all at most",
                     description="0 keeps every concept a student uses")
        inputs.bool("overwrite", default=False, label="Replace an export of that name")
        return form(inputs, "Export students")

    def execute(self, ctx):
        p, root = ctx.params, export_folder(ctx)
        ctx.set_progress(progress=0.0, label=f"exporting {p['key']}: the concept model and the students, checked "
                                             "against the run on its samples")
        manifest = export_students(ctx.dataset, p.get("name") or "", key=p["key"], revision=p.get("revision"),
                                   prune=p.get("prune", 0.0), root=root, overwrite=p.get("overwrite", False),
                                   user=ctx.user_id)
        message = (f"Exported **{p['key']}** revision {manifest['run']['revision']} to `{manifest['directory']}`: "
                   f"{len(manifest['classes'])} classes over {manifest['concepts_kept']:,} of "
                   f"{manifest['concepts']:,} concepts, {manifest['bytes'] / 1e6:.1f} MB")
        if manifest["concepts_kept"] < manifest["concepts"]:
            message += f"; leaving the others out changes a probability by at most {manifest['prune_max_change']:.3f}"
        return {"directory": manifest["directory"], "revision": manifest["run"]["revision"], "message": message}

    def resolve_output(self, ctx):
        return message_output("Exported")


class ApplyStudentExport(foo.Operator):
    @property
    def config(self):
        return operator_config("apply_student_export", "apply exported students",
                               "Predict with an exported student run and write its labels on samples", True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_target_view(ctx, inputs, "Predict", default="DATASET")
        root = export_folder(ctx)
        names = list_exports(root)
        inputs.enum("export", names, view=dropdown({n: n for n in names}), required=True, label="Export",
                    default=names[0] if names else None,
                    description=f"Exports in {root}" if names else "No export yet: export a student run first")
        field = ctx.params.get("label_field")
        inputs.str("label_field", default="student", label="Label field",
                   description="A new field, or one that earlier predictions wrote",
                   **refusal(field, require_prediction_field, ctx.dataset, field))
        inputs.bool("positives_only", default=True, label="Only the classes the students call positive",
                    description="Off: every class with its probability (for precision-recall curves)")
        inputs.int("explain", default=3, label="Concepts explaining each positive class")
        return form(inputs, "Apply exported students")

    def execute(self, ctx):
        p, root = ctx.params, export_folder(ctx)
        name = p.get("export")
        if name not in list_exports(root):
            raise InvalidRequest(f"There is no export '{name}' in {root}: export a student run first")
        view = ctx.target_view()
        total = exact_count(view)  # before: the view may select on the label field
        count = apply_export(view, root / name, p.get("label_field") or "student",
                             explain=p.get("explain", 3), positives_only=p.get("positives_only", True),
                             progress=progress_reporter(ctx, "predicting"))
        if not ctx.delegated:
            ctx.ops.reload_dataset()  # the App learns the new label field
        message = f"**{p.get('label_field') or 'student'}** written on {count:,} samples by export `{name}`"
        if count < total:
            unreadable = total - count
            message += (f"; {unreadable:,} {'samples were' if unreadable > 1 else 'sample was'} left unlabelled: "
                        f"{'their images' if unreadable > 1 else 'its image'} could not be read (the server log "
                        f"names them)")
        return {"samples": count, "unreadable": total - count, "message": message}

    def resolve_output(self, ctx):
        return message_output("Predicted")
