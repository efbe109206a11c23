"""The @inficond/inficond FiftyOne plugin: operators (and later panels) over fiftyone_inficond."""

from .operators import register_operators


def register(plugin):
    register_operators(plugin)
