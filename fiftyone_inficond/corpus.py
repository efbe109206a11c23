"""Concept corpora: the ordered list of concepts whose similarities form a concept vector.

A corpus fixes the column order of every concept vector computed from it, so it carries a
stable id (a hash of its names) that runs record and later stages check.
"""

import hashlib
import importlib.resources
import os
import re
import string
from dataclasses import dataclass

from fiftyone_inficond.errors import InvalidRequest, MissingFile, UnknownName

# Broden names are "place-qualifier"; these real hyphenated words are not.
_HYPHENATED_WORDS = ("lean-to", "polka-dotted", "horse-drawn", "check-in")
_PROTECTED_HYPHEN = "\u2011"  # a non-breaking hyphen hides a word's own hyphen while splitting

DEFAULT_TEMPLATE = "a photo of {}."


@dataclass(frozen=True)
class Corpus:
    """Concept names (column order of concept vectors), their text prompts and a stable id."""

    names: tuple
    prompts: tuple
    id: str

    def __len__(self):
        return len(self.names)

    def texts(self, template=DEFAULT_TEMPLATE):
        """The text encoded for each concept: its prompt in ``template``, in column order."""
        return [template.format(prompt) for prompt in self.prompts]

    def index(self, name):
        """Column of concept ``name`` in this corpus's concept vectors."""
        try:
            return self.names.index(name)
        except ValueError:
            raise UnknownName(f"Concept '{name}' is not in corpus {self.id}") from None


def concept_prompt(name):
    """Turns a corpus name into natural text: ``brewery-outdoor`` -> ``brewery (outdoor)``."""
    text = " ".join(name.split())
    for word in _HYPHENATED_WORDS:
        text = text.replace(word, word.replace("-", _PROTECTED_HYPHEN))
    if "-" in text:
        place, qualifier = text.rsplit("-", 1)
        text = f"{place.strip()} ({qualifier.strip()})"
    return text.replace(_PROTECTED_HYPHEN, "-")


def check_template(template):
    """Refuses a prompt template without exactly one ``{}`` where the concept goes."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except (ValueError, TypeError):
        fields = None
    if fields != [""]:
        raise InvalidRequest(
            f"A concept template must contain {{}} exactly once, where the concept goes "
            f"(like '{DEFAULT_TEMPLATE}'); got {template!r}"
        )
    return template


def corpus_id(names):
    """A stable id of an ordered list of concept names."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:16]


def make_corpus(names):
    """Builds a corpus from concept names: blank entries dropped, duplicates removed.

    Duplicates are judged on the normalized prompt, ignoring case; the first occurrence wins.
    """
    if isinstance(names, (str, bytes)):
        raise InvalidRequest("Give the concepts as a list of names, or a corpus file path; got one string")
    unique, prompts, seen = [], [], set()
    for raw in names:
        if not isinstance(raw, str):
            raise InvalidRequest(f"Concept names must be strings; got {raw!r}")
        name = " ".join(raw.split())
        prompt = concept_prompt(name)
        if not name or prompt.casefold() in seen:
            continue
        seen.add(prompt.casefold())
        unique.append(name)
        prompts.append(prompt)
    if not unique:
        raise InvalidRequest(
            "The concept corpus is empty: give at least one non-blank concept name "
            "(one per line in a corpus file)"
        )
    return Corpus(names=tuple(unique), prompts=tuple(prompts), id=corpus_id(unique))


_COMMENT = re.compile(r"(?:^|\s)#")


def read_corpus_file(path):
    """Reads a corpus file: one concept per line; blank lines and comments (from a ``#`` that
    starts a line or follows a space) ignored. A ``#`` inside a word is part of the name ("C#
    code"); a byte-order mark (as some editors save UTF-8) is not part of the first concept."""
    if not os.path.isfile(path):
        raise MissingFile(f"Corpus file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = [_COMMENT.split(line, maxsplit=1)[0] for line in f]
    except UnicodeDecodeError:
        raise InvalidRequest(f"Corpus file '{path}' is not UTF-8 text: give one concept name per line") from None
    return make_corpus(lines)


def packaged_corpus(name):
    """A corpus shipped with this package: ``"broden"`` (the default, 1,153 concepts) or
    ``"world"`` (the synthetic world's concepts)."""
    path = importlib.resources.files("fiftyone_inficond") / "data" / f"{name}.txt"
    if not path.is_file():
        raise InvalidRequest(f"No packaged corpus '{name}': use 'broden' or 'world'")
    with importlib.resources.as_file(path) as real_path:
        return read_corpus_file(str(real_path))


def load_corpus(source=None):
    """Returns a :class:`Corpus` from ``None`` (Broden), a file path, a list of names or a corpus."""
    if source is None:
        return packaged_corpus("broden")
    if isinstance(source, Corpus):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_corpus_file(os.fspath(source))
    if not isinstance(source, (list, tuple)):
        raise InvalidRequest(f"A corpus is a list of concept names or a file path; got {type(source).__name__}")
    return make_corpus(source)

