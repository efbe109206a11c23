"""The public surface: what a script imports from ``fiftyone_inficond`` is the library's own, and cheap to reach."""

import ast
import importlib
import os
import re

import pytest
from conftest import REPO, run_python

import fiftyone_inficond
import fiftyone_inficond.students

PACKAGES = [fiftyone_inficond, fiftyone_inficond.students]
DOCUMENTS = ["README.md", os.path.join("docs", "sdk.md")]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.__name__)
def test_every_public_name_is_the_very_object_its_own_module_defines(package):
    for name in package.__all__:
        value = getattr(package, name)
        home = importlib.import_module(value.__module__)
        assert getattr(home, name) is value, name
        assert home.__name__.startswith("fiftyone_inficond."), name


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.__name__)
def test_public_names_are_listed_once_and_all_shown_by_dir(package):
    assert len(package.__all__) == len(set(package.__all__))
    assert set(package.__all__) <= set(dir(package))


def test_a_name_the_package_does_not_have_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'fiftyone_inficond' has no attribute 'train_student'"):
        fiftyone_inficond.train_student  # noqa: B018
    assert not hasattr(fiftyone_inficond.students, "no_such_name")


def test_the_package_root_lists_the_sdk_and_every_error():
    from fiftyone_inficond import errors

    own_errors = {name for name, value in vars(errors).items() if isinstance(value, type)}
    assert own_errors <= set(fiftyone_inficond.__all__)
    assert {"compute_concepts", "teacher_from_file", "train_students", "StudentRun", "export_students"} <= set(
        fiftyone_inficond.__all__
    )


def test_the_version_stays_a_literal_that_pyproject_reads_without_importing():
    with open(fiftyone_inficond.__file__) as file:
        tree = ast.parse(file.read())
    versions = [
        node.value.value for node in tree.body
        if isinstance(node, ast.Assign) and [ast.unparse(target) for target in node.targets] == ["__version__"]
    ]
    assert versions == ["0.1.0"]


def _python_examples(document):
    with open(os.path.join(REPO, document)) as file:
        return re.findall(r"```python\n(.*?)```", file.read(), flags=re.DOTALL)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_documented_examples_import_only_public_names_from_the_package_root(document):
    examples = _python_examples(document)
    assert examples
    imported = []
    for example in examples:
        for node in ast.walk(ast.parse(example)):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("fiftyone_inficond"):
                assert node.module == "fiftyone_inficond", ast.unparse(node)
                imported.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                assert not any(alias.name.startswith("fiftyone_inficond") for alias in node.names), ast.unparse(node)
    assert imported and set(imported) <= set(fiftyone_inficond.__all__)


def test_importing_the_package_root_loads_neither_torch_nor_fiftyone():
    loaded = run_python(
        "import sys\n"
        "import fiftyone_inficond, fiftyone_inficond.students\n"
        "from fiftyone_inficond import InvalidRequest, StaleRunError\n"
        "print(sorted({'torch', 'fiftyone', 'open_clip', 'pytorch_lightning'} & set(sys.modules)))\n"
    )
    assert loaded.strip() == "[]"
