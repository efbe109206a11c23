"""The @inficond/inficond FiftyOne plugin: operators and panels over fiftyone_inficond.

The repository is the plugin: ``fiftyone plugins download`` copies this folder, library included,
and ``fiftyone plugins requirements --install`` installs only third-party packages. So the plugin
imports the library that sits beside it, never another copy a package index or an older install put
on the path: plugin and library are one version by construction.
"""

import importlib.machinery
import importlib.util
import os
import sys

LIBRARY = "fiftyone_inficond"
_HERE = os.path.dirname(os.path.abspath(__file__))


def _bundled_library():
    """Imports ``fiftyone_inficond`` from this folder, or accepts the copy already imported when it
    is this folder's (an editable install) or the same version; refuses a different version."""
    spec = importlib.machinery.PathFinder.find_spec(LIBRARY, [_HERE])
    if spec is None:
        raise ImportError(f"The plugin folder {_HERE} lacks its {LIBRARY} library: download the plugin again.")
    imported = sys.modules.get(LIBRARY)
    if imported is None:
        library = importlib.util.module_from_spec(spec)
        sys.modules[LIBRARY] = library
        spec.loader.exec_module(library)
        return library
    bundled = os.path.realpath(spec.submodule_search_locations[0])
    if bundled in map(os.path.realpath, imported.__path__):
        return imported
    version = _declared_version(spec.origin)
    if imported.__version__ != version:
        raise ImportError(
            f"This process already imported {LIBRARY} {imported.__version__} from {imported.__path__[0]}, but the "
            f"plugin came with {version}: install the same version of both, or restart Python before using the plugin."
        )
    return imported


def _declared_version(init_path):
    with open(init_path, encoding="utf-8") as f:
        (line,) = [line for line in f if line.startswith("__version__")]
    return line.split("=", 1)[1].strip().strip("\"'")


_bundled_library()

from .operators import register_operators  # noqa: E402  (after the library it adapts)
from .panels import register_panels  # noqa: E402


def register(plugin):
    register_operators(plugin)
    register_panels(plugin)
