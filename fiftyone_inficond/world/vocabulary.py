"""The synthetic world's vocabulary: backgrounds, things, parts, colours, textures and classes.

The world corpus (``fiftyone_inficond/data/world.txt``) lists exactly these concepts, in this
order; it is a corpus file like any user corpus.
"""

BACKGROUNDS = {  # name: (base RGB, texture noise amplitude)
    "sky": ((120, 180, 235), 6),
    "grass": ((105, 170, 60), 22),  # lighter and yellower than the colour green
    "water": ((40, 90, 170), 14),
    "road": ((75, 75, 80), 10),  # asphalt, darker than grey things
    "sand": ((220, 195, 130), 16),
    "snow": ((240, 243, 248), 5),
}
SKY_THINGS = ("cloud", "sun")
GROUND_THINGS = ("rock",)
PARTS = (
    "body", "wheel", "window", "door", "roof", "wall", "chimney",
    "hull", "sail", "mast", "trunk", "leaves", "wing", "tail", "frame", "handlebar",
)
COLOURS = {
    "red": (200, 40, 40),
    "blue": (40, 70, 200),
    "yellow": (235, 200, 40),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "orange": (240, 130, 30),
    "brown": (120, 75, 40),
    "green": (40, 140, 50),
    "grey": (135, 135, 140),
    "pink": (240, 140, 190),
    "purple": (130, 50, 160),
}
TEXTURES = ("striped", "dotted", "checkered", "plain")

# Each class: the parts it is drawn from and the grounds it usually stands on.
CLASSES = {
    "car": (("body", "wheel", "window"), ("road", "sand")),
    "bus": (("body", "wheel", "window", "door"), ("road",)),
    "boat": (("hull", "sail", "mast"), ("water",)),
    "house": (("wall", "roof", "door", "window", "chimney"), ("grass", "snow")),
    "tree": (("trunk", "leaves"), ("grass", "snow", "sand")),
    "airplane": (("body", "wing", "tail"), ("sky",)),
    "bicycle": (("wheel", "frame", "handlebar"), ("road", "grass")),
}
GROUNDS = ("grass", "water", "road", "sand", "snow")

CONCEPTS = (*BACKGROUNDS, *SKY_THINGS, *GROUND_THINGS, *PARTS, *COLOURS, *TEXTURES)
CONCEPT_INDEX = {name: i for i, name in enumerate(CONCEPTS)}
