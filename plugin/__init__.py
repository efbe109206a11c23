"""The @inficond/inficond FiftyOne plugin: operators and panels over fiftyone_inficond."""

from .operators import register_operators
from .panels import register_panels


def register(plugin):
    register_operators(plugin)
    register_panels(plugin)
