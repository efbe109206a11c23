"""The InFiConD workspace: the panels laid out for a 1280x800 laptop, saved on any dataset.

A user's own dataset has no workspace: each panel opened from FiftyOne's "+" lands beside the
grid at about 490 px, and about ten drags make a usable screen that is lost when the App restarts.
Saved as a FiftyOne workspace, the layout is one action away (the *open workspace* operator, also
offered by the train form) and comes back from the App's workspace menu.

Performance (open first), knowledge, concept map, concept detail and why-this-image are tabs above
the grid; provenance a tab beside the grid. Chosen by looking at 1280x800 and 1600x1000: beside
the grid, the filter sidebar leaves the panels under 700 px at 1280, where five tabs do not fit and
three spaces side by side left each panel 343 px for 500-640 px of content; above it, every panel
has the sidebar's full width and the grid stays in sight for what a click shows. Provenance needs
the grid least (and five tabs are what fits in a row at 1280).
"""

import fiftyone as fo

WORKSPACE = "inficond"
ABOVE_THE_GRID = ("inficond_performance", "inficond_knowledge", "inficond_embedding", "inficond_concept",
                  "inficond_why")
BESIDE_THE_GRID = ("Samples", "inficond_provenance")


def workspace():
    """The layout, as FiftyOne's spaces: the panels as tabs above the grid, provenance beside it."""
    return fo.Space(
        children=[_tabs(*ABOVE_THE_GRID), _tabs(*BESIDE_THE_GRID)],
        orientation="vertical",
        sizes=[0.6, 0.4],
    )


def save_workspace(dataset, name=WORKSPACE):
    """Saves the layout on ``dataset`` as workspace ``name`` (replacing one of that name) and
    returns its spaces."""
    spaces = workspace()
    dataset.save_workspace(name, spaces, description="InFiConD: performance, knowledge, concept map, concept "
                                                     "detail and why-this-image above the grid; provenance",
                           overwrite=True)
    return spaces


def _tabs(*panel_types):
    """A space of tabs, the first one shown (a space without an active child shows nothing)."""
    panels = [fo.Panel(type=t, pinned=t == "Samples") for t in panel_types]
    return fo.Space(children=panels, active_child=panels[0].component_id)
