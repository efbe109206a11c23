"""How the panels show things: the thumbs' colours, lists to pick from, images as URIs, plotly's
configuration (figures and words shared with the operators are in ``operators/ui.py``)."""

import base64
import io

import fiftyone.operators.types as types

CHART_CONFIG = {"displayModeBar": False, "responsive": True}  # a chart without plotly's toolbar


COLOURS = {"up": "🟦", "down": "🟧"}  # the paper's blue up, orange down


def choices(names, width=180):
    """An autocomplete of ``names``, ``width`` pixels wide at least (in a row it shrinks to "bi…").
    Only a listed name is sent: a box open to any text also sent what was typed, keystroke by
    keystroke, as a name."""
    return types.AutocompleteView(choices=[types.Choice(name, label=name) for name in names], allow_user_input=False,
                                  componentsProps={"autocomplete": {"sx": {"minWidth": width}}})


def image_uri(image, quality=80):
    """A PIL image as a ``data:`` URI (plotly's layout images take them)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
