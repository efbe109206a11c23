"""A seeded generator of small scenes whose concepts are known per pixel.

A scene is a sky over one ground (grass, water, road, sand or snow), maybe a cloud, the sun or
a rock, and 1-3 objects of the world's classes, each drawn from parts. Every pixel belongs to
a region concept (a background, thing or part); every thing and part also has a colour concept
(an object's main part in a random colour, other parts in their natural one) and main parts a
texture concept. The concepts an image "has" are read off its masks after drawing, so masks and
concept lists agree by construction, occlusions included. Parts are drawn no smaller than about
one patch of the world CLIP's input, so every concept is visible to it.
"""

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from fiftyone_inficond.world.vocabulary import BACKGROUNDS, CLASSES, COLOURS, CONCEPT_INDEX, CONCEPTS, GROUNDS

NATURAL_COLOURS = {  # things, and parts that are not an object's main part
    "wheel": "black", "window": "blue", "door": "brown", "roof": "red", "chimney": "red",
    "hull": "brown", "mast": "brown", "trunk": "brown", "wing": "grey", "tail": "grey",
    "handlebar": "black", "cloud": "white", "sun": "yellow", "rock": "grey",
}
MAIN_PART = {"car": "body", "bus": "body", "boat": "sail", "house": "wall", "tree": "leaves",
             "airplane": "body", "bicycle": "frame"}
MAIN_COLOURS = {"tree": ("green", "orange", "yellow")}  # others: any colour
MAIN_TEXTURES = ("striped", "dotted", "checkered", "plain", "plain")
VISIBLE_FRACTION = 0.3  # an object counts as present when this much of it stays visible
AIRPLANE_WEIGHT = 0.3  # the sky fits every scene: keep airplanes from crowding it
MAX_OBJECTS = 3
# Context things and how often each appears by itself; a spurious correlation raises one of them
# whenever a class is in the scene (``context_with``).
CONTEXT_RATES = {"cloud": 0.3, "sun": 0.3, "rock": 0.25}
# The documented spurious correlation of training splits: airplanes almost always under a cloud
AIRPLANES_UNDER_CLOUDS = {"airplane": {"cloud": 0.95}}


@dataclass
class Scene:
    """One generated image and its ground truth.

    Attributes:
        image: the RGB picture
        classes: the classes of its (visible) objects, sorted
        concepts: every concept present, in world-corpus order
        region_mask: ``(H, W)`` uint8 world-corpus index + 1 of each pixel's region concept
        colour_mask: ``(H, W)`` uint8 index + 1 of the colour concept, 0 on backgrounds
        texture_mask: ``(H, W)`` uint8 index + 1 of the texture concept, 0 off main parts
        caption: a sentence describing the scene
    """

    image: Image.Image
    classes: list
    concepts: list
    region_mask: np.ndarray
    colour_mask: np.ndarray
    texture_mask: np.ndarray
    caption: str


@dataclass
class _Canvas:
    size: int
    pixels: np.ndarray = field(init=False)
    region: np.ndarray = field(init=False)
    colour: np.ndarray = field(init=False)
    texture: np.ndarray = field(init=False)
    instance: np.ndarray = field(init=False)

    def __post_init__(self):
        self.pixels = np.zeros((self.size, self.size, 3), np.float32)
        self.region = np.zeros((self.size, self.size), np.uint8)
        self.colour = np.zeros((self.size, self.size), np.uint8)
        self.texture = np.zeros((self.size, self.size), np.uint8)
        self.instance = np.zeros((self.size, self.size), np.int16)

    def paint(self, draw_shape, concept, rng, rgb=None, colour=None, texture=None, instance=0, noise=6):
        """Draws a shape (a callable on an ``ImageDraw``) into the picture and every mask.

        The fill is ``rgb`` if given (backgrounds), else the named ``colour``'s.
        """
        stencil = Image.new("L", (self.size, self.size), 0)
        draw_shape(ImageDraw.Draw(stencil))
        inside = np.asarray(stencil) > 0
        shade = _texture(texture or "plain", self.size)[inside][:, None]
        fill = np.asarray(rgb or COLOURS[colour], np.float32) * shade
        self.pixels[inside] = fill + rng.normal(0, noise, fill.shape)
        self.region[inside] = CONCEPT_INDEX[concept] + 1
        self.colour[inside] = CONCEPT_INDEX[colour] + 1 if colour else 0
        self.texture[inside] = CONCEPT_INDEX[texture] + 1 if texture else 0
        self.instance[inside] = instance


@functools.lru_cache
def _texture(name, size):
    """A brightness pattern, ``(size, size)``."""
    ys, xs = np.mgrid[:size, :size]
    if name == "striped":
        return np.where(((xs + ys) // 4) % 2 == 0, 1.0, 0.6)
    if name == "dotted":
        return np.where((xs % 8 < 4) & (ys % 8 < 4), 0.55, 1.0)
    if name == "checkered":
        return np.where((xs // 8 + ys // 8) % 2 == 0, 1.0, 0.6)
    return np.ones((size, size))


def _draw_object(canvas, cls, x, y, s, colour, texture, instance, rng):
    """Draws object ``cls`` standing at ``(x, y)`` (bottom centre), size ``s``."""

    def part(concept, shape):
        is_main = concept == MAIN_PART[cls]
        canvas.paint(
            shape, concept, rng, colour=colour if is_main else NATURAL_COLOURS[concept],
            texture=texture if is_main else None, instance=instance,
        )

    if cls in ("car", "bus"):
        w = s * (1.1 if cls == "car" else 1.6)
        top = 0.45 if cls == "car" else 0.75
        part("body", lambda d: d.rectangle([x - w / 2, y - top * s, x + w / 2, y - 0.15 * s], fill=255))
        if cls == "car":
            part("body", lambda d: d.polygon([(x - w / 3, y - 0.45 * s), (x - w / 5, y - 0.8 * s),
                                             (x + w / 5, y - 0.8 * s), (x + w / 3, y - 0.45 * s)], fill=255))
            part("window", lambda d: d.rectangle([x - w / 6, y - 0.74 * s, x + w / 6, y - 0.5 * s], fill=255))
        else:
            for k in range(3):
                wx = x - w / 2 + w * (0.06 + 0.24 * k)
                part("window", lambda d, wx=wx: d.rectangle([wx, y - 0.68 * s, wx + 0.18 * w, y - 0.42 * s], fill=255))
            part("door", lambda d: d.rectangle([x + 0.3 * w, y - 0.68 * s, x + 0.44 * w, y - 0.15 * s], fill=255))
        for wx in (x - w / 3, x + w / 3):
            part("wheel", lambda d, wx=wx: d.ellipse([wx - 0.17 * s, y - 0.34 * s, wx + 0.17 * s, y], fill=255))
    elif cls == "boat":
        part("hull", lambda d: d.polygon([(x - 0.6 * s, y - 0.35 * s), (x + 0.6 * s, y - 0.35 * s),
                                          (x + 0.4 * s, y), (x - 0.4 * s, y)], fill=255))
        part("mast", lambda d: d.rectangle([x - 0.05 * s, y - 1.1 * s, x + 0.05 * s, y - 0.35 * s], fill=255))
        part("sail", lambda d: d.polygon([(x + 0.08 * s, y - 1.05 * s), (x + 0.08 * s, y - 0.4 * s),
                                          (x + 0.6 * s, y - 0.4 * s)], fill=255))
    elif cls == "house":
        part("wall", lambda d: d.rectangle([x - 0.45 * s, y - 0.6 * s, x + 0.45 * s, y], fill=255))
        part("chimney", lambda d: d.rectangle([x + 0.16 * s, y - 1.05 * s, x + 0.34 * s, y - 0.75 * s], fill=255))
        part("roof", lambda d: d.polygon([(x - 0.55 * s, y - 0.6 * s), (x, y - 1.0 * s), (x + 0.55 * s, y - 0.6 * s)],
                                         fill=255))
        part("door", lambda d: d.rectangle([x - 0.3 * s, y - 0.38 * s, x - 0.08 * s, y], fill=255))
        part("window", lambda d: d.rectangle([x + 0.08 * s, y - 0.48 * s, x + 0.36 * s, y - 0.22 * s], fill=255))
    elif cls == "tree":
        part("trunk", lambda d: d.rectangle([x - 0.1 * s, y - 0.5 * s, x + 0.1 * s, y], fill=255))
        part("leaves", lambda d: d.ellipse([x - 0.4 * s, y - 1.2 * s, x + 0.4 * s, y - 0.4 * s], fill=255))
    elif cls == "airplane":
        part("body", lambda d: d.ellipse([x - 0.6 * s, y - 0.25 * s, x + 0.6 * s, y], fill=255))
        part("wing", lambda d: d.polygon([(x - 0.15 * s, y - 0.12 * s), (x + 0.2 * s, y - 0.12 * s),
                                          (x - 0.2 * s, y + 0.4 * s), (x - 0.45 * s, y + 0.4 * s)], fill=255))
        part("tail", lambda d: d.polygon([(x - 0.6 * s, y - 0.12 * s), (x - 0.32 * s, y - 0.12 * s),
                                          (x - 0.55 * s, y - 0.55 * s), (x - 0.72 * s, y - 0.55 * s)], fill=255))
    elif cls == "bicycle":
        line = max(3, int(s / 8))
        for wx in (x - 0.35 * s, x + 0.35 * s):
            part("wheel", lambda d, wx=wx: d.ellipse([wx - 0.25 * s, y - 0.5 * s, wx + 0.25 * s, y],
                                                     outline=255, width=line))
        part("frame", lambda d: d.line([(x - 0.35 * s, y - 0.25 * s), (x, y - 0.25 * s), (x + 0.35 * s, y - 0.25 * s),
                                        (x + 0.15 * s, y - 0.6 * s), (x - 0.1 * s, y - 0.6 * s), (x, y - 0.25 * s)],
                                       fill=255, width=line))
        part("handlebar", lambda d: d.line([(x + 0.15 * s, y - 0.6 * s), (x + 0.25 * s, y - 0.85 * s),
                                            (x + 0.45 * s, y - 0.85 * s)], fill=255, width=line))


def _place(rng, cls, horizon, size):
    if cls == "airplane":
        s = rng.uniform(0.35, 0.5) * size
        return rng.uniform(0.3, 0.7) * size, rng.uniform(0.3 * s, horizon), s
    s = rng.uniform(0.3, 0.45) * size
    return rng.uniform(0.15, 0.85) * size, rng.uniform(horizon + 0.25 * (size - horizon), size - 2), s


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _caption(rng, objects, ground, things):
    words = [
        f"{_article(colour)} {colour} {texture + ' ' if texture != 'plain' else ''}{cls}"
        for cls, colour, texture in objects
    ]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    sky_things = [t for t in things if t != "rock"]
    sky = f" under a sky with a {' and a '.join(sky_things)}" if sky_things else ""
    rock = " beside a rock" if "rock" in things else ""
    templates = (
        "a photo of {things}{rock} on the {ground}{sky}.",
        "{things}{rock} by the {ground}{sky}.",
        "a picture showing {things}{rock}, {ground} below{sky}.",
        "there is {things}{rock} on the {ground}{sky}.",
    )
    return templates[rng.integers(len(templates))].format(things=listed, rock=rock, ground=ground, sky=sky)


def _paint_background(canvas, rng, ground, horizon):
    size = canvas.size
    for name, box in (("sky", [0, 0, size, horizon]), (ground, [0, horizon, size, size])):
        rgb, noise = BACKGROUNDS[name]
        canvas.paint(lambda d, box=box: d.rectangle(box, fill=255), name, rng, rgb=rgb, noise=noise)


def _paint_sky_things(canvas, rng, horizon, probabilities):
    """Maybe a cloud and the sun."""
    size = canvas.size
    if rng.random() < probabilities["cloud"]:
        cx, cy = rng.uniform(0.1, 0.9) * size, rng.uniform(0.15, 0.7) * horizon
        canvas.paint(lambda d: d.ellipse([cx - 22, cy - 9, cx + 22, cy + 9], fill=255), "cloud", rng,
                     colour="white", noise=3)
    if rng.random() < probabilities["sun"]:
        sx, sy = rng.uniform(0.1, 0.9) * size, rng.uniform(0.2, 0.6) * horizon
        canvas.paint(lambda d: d.ellipse([sx - 11, sy - 11, sx + 11, sy + 11], fill=255), "sun", rng,
                     colour="yellow", noise=3)


def _paint_rock(canvas, rng, probability):
    """Maybe a rock in the foreground, in front of the objects."""
    if rng.random() < probability:
        size = canvas.size
        rx, ry = rng.uniform(0.1, 0.9) * size, rng.uniform(0.85, 0.95) * size
        canvas.paint(lambda d: d.ellipse([rx - 18, ry - 11, rx + 18, ry + 11], fill=255), "rock", rng,
                     colour="grey", noise=10)


def context_probabilities(classes, context_with=None):
    """How likely each context thing is in a scene holding ``classes``: its own rate
    (:data:`CONTEXT_RATES`), raised where ``context_with`` ``{class: {thing: probability}}``
    ties it to one of them (e.g. ``{"boat": {"sun": 0.95}}``)."""
    probabilities = dict(CONTEXT_RATES)
    for cls, things in (context_with or {}).items():
        unknown = set(things) - set(CONTEXT_RATES)
        if cls not in CLASSES or unknown:
            raise ValueError(f"A context ties a class of {sorted(CLASSES)} to things of {sorted(CONTEXT_RATES)}; "
                             f"got {cls!r}: {things!r}")
        if cls in classes:
            for thing, probability in things.items():
                probabilities[thing] = max(probabilities[thing], probability)
    return probabilities


def generate_scene(rng, size=128, context_with=None, hidden=None):
    """One random :class:`Scene`.

    Args:
        rng: a ``numpy.random.Generator``
        size: image side in pixels
        context_with: ``{class: {thing: probability}}``: spurious correlations to inject, a
            context thing (cloud, sun, rock) appearing with that probability whenever the class
            is in the scene (see :func:`context_probabilities`)
        hidden: ``{class: probability}`` that an object of that class is hidden (behind the
            context, say) yet labelled: with ``context_with``, a biased teacher's training scenes,
            where the label often has only the context to go by
    """
    canvas = _Canvas(size)
    horizon = int(rng.uniform(0.35, 0.55) * size)
    ground = GROUNDS[rng.integers(len(GROUNDS))]
    fits = [c for c, (_, grounds) in CLASSES.items() if ground in grounds or "sky" in grounds]
    weights = np.array([AIRPLANE_WEIGHT if c == "airplane" else 1.0 for c in fits])
    chosen = [str(c) for c in rng.choice(fits, size=rng.integers(1, MAX_OBJECTS + 1), p=weights / weights.sum())]

    _paint_background(canvas, rng, ground, horizon)
    probabilities = context_probabilities(chosen, context_with)
    _paint_sky_things(canvas, rng, horizon, probabilities)

    objects, drawn, hidden_classes = [], [], []
    for instance, cls in enumerate(sorted(chosen, key=lambda c: c != "airplane"), start=1):
        palette = MAIN_COLOURS.get(cls, tuple(COLOURS))
        colour = palette[rng.integers(len(palette))]
        texture = MAIN_TEXTURES[rng.integers(len(MAIN_TEXTURES))]
        x, y, s = _place(rng, cls, horizon, size)
        if hidden and rng.random() < hidden.get(cls, 0):  # no draw without ``hidden``: the plain world stays
            hidden_classes.append(cls)
        else:
            _draw_object(canvas, cls, x, y, s, colour, texture, instance, rng)
        drawn.append(int((canvas.instance == instance).sum()))
        objects.append((cls, colour, texture))
    _paint_rock(canvas, rng, probabilities["rock"])

    visible = [
        obj for instance, (obj, area) in enumerate(zip(objects, drawn), start=1)
        if area and (canvas.instance == instance).sum() >= VISIBLE_FRACTION * area
    ]
    layers = (canvas.region, canvas.colour, canvas.texture)
    present = {CONCEPTS[i - 1] for layer in layers for i in np.unique(layer) if i}
    image = Image.fromarray(np.clip(canvas.pixels, 0, 255).astype(np.uint8))
    things = [t for t in ("cloud", "sun", "rock") if t in present]
    return Scene(
        image=image,
        classes=sorted({cls for cls, _, _ in visible} | set(hidden_classes)),
        concepts=[c for c in CONCEPTS if c in present],
        region_mask=canvas.region,
        colour_mask=canvas.colour,
        texture_mask=canvas.texture,
        caption=_caption(rng, visible or objects, ground, things),
    )


def generate_scenes(n, seed=0, **kwargs):
    """``n`` scenes from one seed: the same seed always gives the same scenes."""
    rng = np.random.default_rng(seed)
    return [generate_scene(rng, **kwargs) for _ in range(n)]
