"""The App server's settings are the plugin's secrets, as FiftyOne declares and resolves them:
listed in fiftyone.yml, read through ``ctx.secrets`` (in open-source FiftyOne, from the server's
environment variable of the same name)."""

import sys

import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext

from fiftyone_inficond import train_students

PLUGIN = "@inficond/inficond"
SETTINGS = ["INFICOND_SERVER_DIRS", "INFICOND_ZOO_MODELS", "INFICOND_EXPORT_DIR"]


def test_every_setting_is_a_declared_plugin_secret_of_every_operator():
    for name in ("compute_concepts", "import_teacher_scores", "export_students", "apply_student_export"):
        assert sorted(foo.get_operator(f"{PLUGIN}/{name}")._plugin_secrets) == sorted(SETTINGS)


def test_an_operation_reads_the_export_folder_through_its_secrets(distilled, tmp_path, monkeypatch):
    train_students(distilled, key="s", epochs=1, budget=8)
    monkeypatch.setenv("INFICOND_EXPORT_DIR", str(tmp_path / "exports"))
    operator = foo.get_operator(f"{PLUGIN}/export_students")
    setting = sys.modules[type(operator).__module__].setting
    ctx = ExecutionContext(request_params={"dataset_name": distilled.name, "params": {"key": "s"}},
                           operator_uri=operator.uri, required_secrets=operator._plugin_secrets)
    assert ctx.secrets["INFICOND_EXPORT_DIR"]  # declared, so FiftyOne resolves it for the operation
    assert setting(ctx, "INFICOND_EXPORT_DIR") == str(tmp_path / "exports")
    assert setting(ctx, "INFICOND_EXPORT_DIR") == str(tmp_path / "exports")  # resolved, then remembered
    description = operator.resolve_input(ctx).type.properties["name"].view.description
    assert description == f"A folder of {tmp_path / 'exports'}"
