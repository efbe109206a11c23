"""A seeded generator of small scenes whose concepts are known per pixel.

A scene is a sky over one ground (grass, water, road, sand or snow), maybe a cloud or the sun,
and 1-4 objects of the world's classes, each drawn from parts in a main colour and texture.
Every pixel belongs to a region concept (a background, cloud, sun or part) and, on an
object's main part, a colour and a texture concept. The concepts an image "has" are read off its masks after
drawing, so masks and concept lists agree by construction, occlusions included.
"""

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from fiftyone_inficond.world.vocabulary import BACKGROUNDS, CLASSES, COLOURS, CONCEPT_INDEX, CONCEPTS, GROUNDS

FIXED_PART_COLOURS = {  # parts that are not an object's main part keep natural colours
    "wheel": (55, 55, 60), "window": (170, 220, 240), "hull": (130, 90, 60), "body": (210, 210, 215), "door": (90, 60, 40), "roof": (150, 50, 40),
    "chimney": (110, 60, 50), "mast": (90, 70, 50), "trunk": (100, 70, 40), "tail": (200, 200, 210),
    "wing": (190, 190, 200), "handlebar": (40, 40, 40), "cloud": (250, 250, 252), "sun": (255, 220, 60),
}
MAIN_PART = {"car": "body", "bus": "body", "boat": "sail", "house": "wall", "tree": "leaves",
             "airplane": "body", "bicycle": "frame"}
VISIBLE_FRACTION = 0.3  # an object counts as present when this much of it stays visible
AIRPLANE_WEIGHT = 0.25  # the sky fits every scene: keep airplanes from crowding it
NATURAL_COLOURS = {"tree": ("green", "orange", "yellow")}


@dataclass
class Scene:
    """One generated image and its ground truth.

    Attributes:
        image: the RGB picture
        classes: the classes of its (visible) objects, sorted
        concepts: every concept present, in world-corpus order
        region_mask: ``(H, W)`` uint8 world-corpus index + 1 of each pixel's region concept
        colour_mask: ``(H, W)`` uint8 index + 1 of the colour concept, 0 off main parts
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

    def paint(self, draw_shape, concept, rgb, rng, colour=None, texture="plain", instance=0, noise=6):
        """Draws a shape (a callable on an ``ImageDraw``) into the picture and every mask."""
        stencil = Image.new("L", (self.size, self.size), 0)
        draw_shape(ImageDraw.Draw(stencil))
        inside = np.asarray(stencil) > 0
        fill = np.broadcast_to(np.asarray(rgb, np.float32), self.pixels.shape).copy()
        fill *= _texture(texture, self.size)[..., None]
        fill += rng.normal(0, noise, fill.shape)
        self.pixels[inside] = fill[inside]
        self.region[inside] = CONCEPT_INDEX[concept] + 1
        self.colour[inside] = CONCEPT_INDEX[colour] + 1 if colour else 0
        self.texture[inside] = CONCEPT_INDEX[texture] + 1 if colour else 0  # main parts only
        self.instance[inside] = instance


def _texture(name, size):
    ys, xs = np.mgrid[:size, :size]
    if name == "striped":
        return np.where(((xs + ys) // 4) % 2 == 0, 1.0, 0.6)
    if name == "dotted":
        return np.where((xs % 8 < 3) & (ys % 8 < 3), 0.55, 1.0)
    return np.ones((size, size))


def _draw_object(canvas, cls, x, y, s, colour, texture, instance, rng):
    """Draws object ``cls`` standing at ``(x, y)`` (bottom centre), size ``s``."""
    main_rgb = COLOURS[colour]

    def part(concept, shape):
        is_main = concept == MAIN_PART[cls]
        canvas.paint(
            shape, concept, main_rgb if is_main else FIXED_PART_COLOURS[concept], rng,
            colour=colour if is_main else None, texture=texture if is_main else "plain", instance=instance,
        )

    if cls in ("car", "bus"):
        w = s * (1.0 if cls == "car" else 1.6)
        part("body", lambda d: d.rectangle([x - w / 2, y - 0.55 * s, x + w / 2, y - 0.15 * s], fill=255))
        if cls == "car":
            part("body", lambda d: d.polygon([(x - w / 4, y - 0.55 * s), (x - w / 6, y - 0.8 * s),
                                             (x + w / 6, y - 0.8 * s), (x + w / 4, y - 0.55 * s)], fill=255))
            part("window", lambda d: d.rectangle([x - w / 7, y - 0.75 * s, x + w / 7, y - 0.58 * s], fill=255))
        else:
            for k in range(4):
                wx = x - w / 2 + w * (0.08 + 0.2 * k)
                part("window", lambda d, wx=wx: d.rectangle([wx, y - 0.5 * s, wx + 0.12 * w, y - 0.36 * s], fill=255))
            part("door", lambda d: d.rectangle([x + 0.34 * w, y - 0.5 * s, x + 0.44 * w, y - 0.17 * s], fill=255))
        for wx in (x - w / 3, x + w / 3):
            part("wheel", lambda d, wx=wx: d.ellipse([wx - 0.14 * s, y - 0.28 * s, wx + 0.14 * s, y], fill=255))
    elif cls == "boat":
        part("hull", lambda d: d.polygon([(x - 0.6 * s, y - 0.3 * s), (x + 0.6 * s, y - 0.3 * s),
                                          (x + 0.4 * s, y), (x - 0.4 * s, y)], fill=255))
        part("mast", lambda d: d.rectangle([x - 0.03 * s, y - 1.1 * s, x + 0.03 * s, y - 0.3 * s], fill=255))
        part("sail", lambda d: d.polygon([(x + 0.05 * s, y - 1.05 * s), (x + 0.05 * s, y - 0.35 * s),
                                          (x + 0.5 * s, y - 0.35 * s)], fill=255))
    elif cls == "house":
        part("wall", lambda d: d.rectangle([x - 0.45 * s, y - 0.6 * s, x + 0.45 * s, y], fill=255))
        part("chimney", lambda d: d.rectangle([x + 0.2 * s, y - 1.0 * s, x + 0.32 * s, y - 0.75 * s], fill=255))
        part("roof", lambda d: d.polygon([(x - 0.55 * s, y - 0.6 * s), (x, y - 1.0 * s), (x + 0.55 * s, y - 0.6 * s)], fill=255))
        part("door", lambda d: d.rectangle([x - 0.1 * s, y - 0.35 * s, x + 0.1 * s, y], fill=255))
        part("window", lambda d: d.rectangle([x + 0.18 * s, y - 0.45 * s, x + 0.36 * s, y - 0.28 * s], fill=255))
    elif cls == "tree":
        part("trunk", lambda d: d.rectangle([x - 0.08 * s, y - 0.5 * s, x + 0.08 * s, y], fill=255))
        part("leaves", lambda d: d.ellipse([x - 0.4 * s, y - 1.2 * s, x + 0.4 * s, y - 0.4 * s], fill=255))
    elif cls == "airplane":
        part("body", lambda d: d.ellipse([x - 0.7 * s, y - 0.2 * s, x + 0.7 * s, y], fill=255))
        part("wing", lambda d: d.polygon([(x - 0.1 * s, y - 0.1 * s), (x + 0.2 * s, y - 0.1 * s),
                                          (x - 0.2 * s, y + 0.35 * s)], fill=255))
        part("tail", lambda d: d.polygon([(x - 0.7 * s, y - 0.1 * s), (x - 0.55 * s, y - 0.1 * s),
                                          (x - 0.75 * s, y - 0.45 * s)], fill=255))
        part("window", lambda d: d.rectangle([x + 0.3 * s, y - 0.15 * s, x + 0.5 * s, y - 0.07 * s], fill=255))
    elif cls == "bicycle":
        for wx in (x - 0.35 * s, x + 0.35 * s):
            part("wheel", lambda d, wx=wx: d.ellipse([wx - 0.25 * s, y - 0.5 * s, wx + 0.25 * s, y], outline=255, width=max(2, int(s / 14))))
        part("frame", lambda d: d.line([(x - 0.35 * s, y - 0.25 * s), (x, y - 0.25 * s), (x + 0.35 * s, y - 0.25 * s),
                                        (x + 0.15 * s, y - 0.6 * s), (x - 0.1 * s, y - 0.6 * s), (x, y - 0.25 * s)],
                                       fill=255, width=max(2, int(s / 12))))
        part("handlebar", lambda d: d.line([(x + 0.15 * s, y - 0.6 * s), (x + 0.25 * s, y - 0.75 * s)],
                                           fill=255, width=max(2, int(s / 12))))


def _place(rng, cls, horizon, size):
    s = rng.uniform(0.22, 0.4) * size
    x = rng.uniform(0.15, 0.85) * size
    if cls == "airplane":
        return x, rng.uniform(0.15, 0.9) * horizon, s
    return x, rng.uniform(horizon + 0.25 * (size - horizon), size - 2), s


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _caption(rng, objects, ground, sky_things):
    words = [
        f"{_article(colour)} {colour} {texture + ' ' if texture != 'plain' else ''}{cls}"
        for cls, colour, texture in objects
    ]
    things = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    sky = f" under a sky with a {' and a '.join(sky_things)}" if sky_things else ""
    templates = (
        "a photo of {things} on the {ground}{sky}.",
        "{things} by the {ground}{sky}.",
        "a picture showing {things}, {ground} below{sky}.",
        "there is {things} on the {ground}{sky}.",
    )
    return templates[rng.integers(len(templates))].format(things=things, ground=ground, sky=sky)


def generate_scene(rng, size=128, cloud_rate=0.3, cloud_with=None):
    """One random :class:`Scene`.

    Args:
        rng: a ``numpy.random.Generator``
        size: image side in pixels
        cloud_rate: how often a cloud appears
        cloud_with: ``{class: probability}`` of a cloud when that class is in the scene: a
            spurious correlation to inject (e.g. ``{"boat": 0.95}``)
    """
    canvas = _Canvas(size)
    horizon = int(rng.uniform(0.35, 0.55) * size)
    ground = GROUNDS[rng.integers(len(GROUNDS))]
    fits = [c for c, (_, grounds) in CLASSES.items() if ground in grounds or "sky" in grounds]
    weights = np.array([AIRPLANE_WEIGHT if c == "airplane" else 1.0 for c in fits])
    chosen = [str(c) for c in rng.choice(fits, size=rng.integers(1, 5), p=weights / weights.sum())]

    sky_rgb, sky_noise = BACKGROUNDS["sky"]
    canvas.paint(lambda d: d.rectangle([0, 0, size, horizon], fill=255), "sky", sky_rgb, rng, noise=sky_noise)
    ground_rgb, ground_noise = BACKGROUNDS[ground]
    canvas.paint(lambda d: d.rectangle([0, horizon, size, size], fill=255), ground, ground_rgb, rng, noise=ground_noise)
    cloud_probability = max([cloud_rate] + [p for c, p in (cloud_with or {}).items() if c in chosen])
    if rng.random() < cloud_probability:
        cx, cy = rng.uniform(0.1, 0.9) * size, rng.uniform(0.1, 0.7) * horizon
        canvas.paint(lambda d: d.ellipse([cx - 16, cy - 6, cx + 16, cy + 6], fill=255), "cloud", FIXED_PART_COLOURS["cloud"], rng, noise=3)
    if rng.random() < 0.3:
        sx, sy = rng.uniform(0.1, 0.9) * size, rng.uniform(0.15, 0.6) * horizon
        canvas.paint(lambda d: d.ellipse([sx - 7, sy - 7, sx + 7, sy + 7], fill=255), "sun", FIXED_PART_COLOURS["sun"], rng, noise=3)

    objects, drawn = [], []
    for instance, cls in enumerate(sorted(chosen, key=lambda c: c != "airplane"), start=1):
        palette = NATURAL_COLOURS.get(cls, tuple(COLOURS))
        colour = palette[rng.integers(len(palette))]
        texture = ("striped", "dotted", "plain", "plain")[rng.integers(4)]
        x, y, s = _place(rng, cls, horizon, size)
        _draw_object(canvas, cls, x, y, s, colour, texture, instance, rng)
        drawn.append(int((canvas.instance == instance).sum()))
        objects.append((cls, colour, texture))

    visible = [
        obj for instance, (obj, area) in enumerate(zip(objects, drawn), start=1)
        if area and (canvas.instance == instance).sum() >= VISIBLE_FRACTION * area
    ]
    layers = (canvas.region, canvas.colour, canvas.texture)
    present = {CONCEPTS[i - 1] for layer in layers for i in np.unique(layer) if i}
    image = Image.fromarray(np.clip(canvas.pixels, 0, 255).astype(np.uint8))
    sky_things = [t for t in ("cloud", "sun") if t in present]
    return Scene(
        image=image,
        classes=sorted({cls for cls, _, _ in visible}),
        concepts=[c for c in CONCEPTS if c in present],
        region_mask=canvas.region,
        colour_mask=canvas.colour,
        texture_mask=canvas.texture,
        caption=_caption(rng, visible or objects, ground, sky_things),
    )


def generate_scenes(n, seed=0, **kwargs):
    """``n`` scenes from one seed: the same seed always gives the same scenes."""
    rng = np.random.default_rng(seed)
    return [generate_scene(rng, **kwargs) for _ in range(n)]
