"""InFiConD: concept-based students distilled from any teacher, tuned without code (a FiftyOne plugin's library)."""

__version__ = "0.1.0"
