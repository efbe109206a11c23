"""Reading an export back, safely: the manifest checked against its digest, every file against the
manifest, then that they fit together, before anything is used; nothing is unpickled (tensors are
safetensors, and the program is read by ``torch.jit.load``, which builds only TorchScript types).
The format and how an export is written: :mod:`fiftyone_inficond.deploy.export`.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from fiftyone_inficond.deploy.export import (
    CORPUS,
    FORMAT,
    FORMAT_VERSION,
    HEX_DIGEST,
    MANIFEST,
    PROGRAM,
    TENSORS,
    export_root,
    is_export,
    manifest_digest,
    path_text,
    sealed_entries,
)
from fiftyone_inficond.deploy.path import load_program
from fiftyone_inficond.errors import InvalidRequest, MissingFile
from fiftyone_inficond.text_cache import file_digest


@dataclass
class StudentExport:
    """A checked export: its manifest, the students' tensors and the loaded program.

    Attributes:
        directory: the export folder
        manifest: ``manifest.json`` as a dict
        tensors: name → tensor from ``students.safetensors``
        program: the path as a callable module: ``(probabilities, concept_vectors) = program(images)``
        concepts: the names of all the run's concepts, in column order (``corpus.txt``)
    """

    directory: Path
    manifest: dict
    tensors: dict
    program: torch.nn.Module
    concepts: list

    @property
    def classes(self):
        return list(self.manifest["classes"])

    @property
    def kept_concepts(self):
        """Names of the concepts the program computes, in its column order."""
        return [self.concepts[i] for i in self.tensors["kept"].tolist()]

    @torch.no_grad()
    def predict(self, images):
        """``(batch, k)`` probabilities and ``(batch, c)`` concept vectors of preprocessed images (numpy)."""
        probabilities, vectors = self.program(torch.as_tensor(images, dtype=torch.float32))
        return probabilities.numpy(), vectors.numpy()

    def contributions(self, vectors):
        """``(batch, k, c)``: each kept concept's share of each class's logit (standardized value × weight)."""
        kept = self.tensors["kept"].numpy()
        mean, std = self.tensors["concept_mean"].numpy()[kept], self.tensors["concept_std"].numpy()[kept]
        return ((vectors - mean) / std)[:, None, :] * self.tensors["weight"].numpy()[None][:, :, kept]


def load_export(directory):
    """Reads an export, refusing one whose files escape its folder, differ from the manifest, or do
    not fit together, and one whose manifest was edited.

    Raises:
        MissingFile: ``directory`` holds no export
        InvalidRequest: the manifest or a file is missing, altered, malformed, a link, outside the
            folder, or not in a safe format
    """
    directory = Path(path_text(directory)).absolute()
    manifest = _read_manifest(directory)
    for name, digest in manifest["files"].items():
        file = _inside(directory, name)
        if file_digest(file) != digest:
            raise InvalidRequest(f"'{name}' of export '{directory}' differs from its manifest (altered or "
                                 f"corrupted): export the run again")
    try:
        tensors, seal = safetensors.torch.load_file(directory / TENSORS), _seal(directory / TENSORS)
        program = load_program(directory / PROGRAM)
        text = (directory / CORPUS).read_text(encoding="utf-8")
    except Exception as e:  # any unreadable file: the message names the export to redo
        raise InvalidRequest(f"Export '{directory}' could not be read ({type(e).__name__}): "
                             "export the run again") from e
    concepts = text.split("\n")[:-1]  # one name a line, each line ended: as written
    if not _fits(manifest, tensors, concepts):
        raise InvalidRequest(f"The files of export '{directory}' do not fit its manifest (other classes or "
                             f"concepts): export the run again")
    if seal != sealed_entries(manifest["classes"], manifest["threshold"], text):
        raise InvalidRequest(f"The manifest or corpus of export '{directory}' was edited (its classes, threshold or "
                             f"concepts are not those its students were exported with): export the run again")
    return StudentExport(directory, manifest, tensors, program, concepts)


def _seal(path):
    with safetensors.safe_open(path, framework="pt") as tensors:
        return tensors.metadata()


def _fits(manifest, tensors, concepts):
    """Whether the students' tensors and the concept names have the manifest's classes and concepts."""
    k, c = len(manifest["classes"]), manifest["concepts"]
    shapes = dict(weight=(k, c), bias=(k,), concept_mean=(c,), concept_std=(c,), kept=(manifest["concepts_kept"],))
    if len(concepts) != c or any(name not in tensors or tuple(tensors[name].shape) != shape
                                 for name, shape in shapes.items()):
        return False
    kept, embeddings = tensors["kept"], tensors.get("concept_embeddings")
    ordered = kept.numel() == 0 or (int(kept.min()) >= 0 and int(kept.max()) < c and bool((kept.diff() > 0).all()))
    return (embeddings is not None and embeddings.ndim == 2 and embeddings.shape[0] == c
            and not kept.is_floating_point() and ordered)


def _read_manifest(directory):
    if not (directory / MANIFEST).is_file():
        raise MissingFile(f"'{directory}' is not a student export (no {MANIFEST}): choose an export folder")
    file = _inside(directory, MANIFEST)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except ValueError:  # UnicodeDecodeError included
        raise InvalidRequest(f"The manifest of '{directory}' is not valid JSON: export the run again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or \
            manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidRequest(f"'{directory}' is not a version-{FORMAT_VERSION} student export: export the run again")
    if manifest.get("digest") != manifest_digest(manifest):
        raise InvalidRequest(f"The manifest of '{directory}' was edited or corrupted (it does not match its "
                             f"digest): export the run again")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise InvalidRequest(f"The manifest of '{directory}' has {problem}: export the run again")
    return manifest


def _manifest_problem(manifest):
    """What is wrong with the entries of ``manifest`` that reading and predicting use, or ``None``."""
    files, classes, concepts, kept = (manifest.get(name) for name in ("files", "classes", "concepts", "concepts_kept"))
    if not isinstance(files, dict) or set(files) != {PROGRAM, TENSORS, CORPUS} or \
            not all(isinstance(d, str) and HEX_DIGEST.fullmatch(d) for d in files.values()):
        return "no list of the export's files with their digests"
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes) or \
            len(set(classes)) != len(classes):
        return "no list of distinct class names"
    if not (_real(manifest.get("threshold")) and 0 < manifest["threshold"] < 1):
        return "no decision threshold between 0 and 1"
    if not (_whole(concepts) and _whole(kept) and 0 <= kept <= concepts and concepts >= 1):
        return "no count of its concepts"
    if not _preprocessing(manifest.get("preprocess")):
        return "no preprocessing open_clip can apply"
    return None


def _preprocessing(spec):
    """Whether ``spec`` is an image preprocessing :class:`fiftyone_inficond.deploy.model.StudentModel` can build."""
    numbers = lambda value, n: isinstance(value, list) and len(value) == n and all(map(_real, value))  # noqa: E731
    return (isinstance(spec, dict) and numbers(spec.get("size"), 2) and all(_whole(s) and 1 <= s <= 4096
                                                                            for s in spec["size"])
            and numbers(spec.get("mean"), 3) and numbers(spec.get("std"), 3) and min(spec["std"]) > 0
            and spec.get("interpolation") in ("bicubic", "bilinear", "random")
            and spec.get("resize_mode") in ("shortest", "longest", "squash"))


def _real(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _inside(directory, name):
    """``directory / name``, refused when it is a link or resolves outside ``directory``."""
    file = directory / name
    if file.is_symlink() or not Path(os.path.realpath(file)).is_relative_to(os.path.realpath(directory)):
        raise InvalidRequest(f"'{name}' of export '{directory}' leads outside it: export the run again")
    if not file.is_file():
        raise InvalidRequest(f"Export '{directory}' lacks '{name}': export the run again")
    return file


def list_exports(root=None):
    """Names of the export folders in ``root`` (:func:`export_root` by default), newest first."""
    root = Path(root or export_root())
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if not p.name.startswith(".") and is_export(p)]
    return [p.name for p in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)]
