"""Exporting a student run as a folder that predicts without this package, and reading it back safely.

An export is a folder of four files, listed with their SHA-256 in ``manifest.json``:

- ``students.pt``: the whole path (:class:`fiftyone_inficond.deploy.path.StudentPath`) as a
  TorchScript program, with concepts that no student uses (zero weight for every class, or
  below a pruning level the caller chooses) left out. ``torch.jit.load(...)(images)`` returns
  ``(probabilities, concept_vectors)`` for ``(batch, 3, H, W)`` images preprocessed as the
  manifest's ``preprocess`` says;
- ``students.safetensors``: the students over every concept of the run (weight, bias,
  standardization), the concepts' text embeddings and which concepts the program keeps;
- ``corpus.txt``: the run's concept names, one per line, in column order;
- ``manifest.json``: the run and revision, who exported it and when, the classes, the concept
  extractor (open_clip model, weights, template, grid, segments), the preprocessing, versions.

Writes go to a hidden temporary folder beside the target, renamed into place when complete, so a
crash, a full disk or a refused write leaves the old export or none, never half of one. Reading
checks every file against the manifest before loading it, and nothing is unpickled: tensors are
safetensors, and the program is read by ``torch.jit.load``, which builds only TorchScript types.
"""

import contextlib
import datetime
import importlib.metadata
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from scipy.special import expit

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.corpus import make_corpus
from fiftyone_inficond.deploy.path import StudentPath, load_program, save_program, script
from fiftyone_inficond.errors import InvalidRequest, MissingFile
from fiftyone_inficond.fiftyone_api import dataset_of
from fiftyone_inficond.runs import CONCEPTS_METHOD, require_run
from fiftyone_inficond.students import store
from fiftyone_inficond.students.run import load_students
from fiftyone_inficond.text_cache import file_digest, run_text_embeddings, weights_id
from fiftyone_inficond.validation import number, whole_number

FORMAT, FORMAT_VERSION = "inficond-students", 1
PROGRAM, TENSORS, CORPUS, MANIFEST = "students.pt", "students.safetensors", "corpus.txt", "manifest.json"
EXPORT_DIR_ENV = "INFICOND_EXPORT_DIR"


def export_root():
    """Where the App's exports go: ``$INFICOND_EXPORT_DIR``, else ``~/fiftyone/inficond-exports``."""
    import fiftyone as fo

    return Path(os.environ.get(EXPORT_DIR_ENV) or Path(fo.config.default_dataset_dir).parent / "inficond-exports")


def export_students(samples, directory, key="students", revision=None, prune=0.0, root=None, overwrite=False,
                    user=None):
    """Exports student run ``key`` at ``revision`` (the newest by default) to folder ``directory``.

    Args:
        samples: the run's dataset or a view of it
        directory: the folder to create; relative to ``root`` when ``root`` is given
        key: the student run
        revision: a revision of its history, or ``None`` for the newest
        prune: concepts whose weight is at most this in absolute value for every class are left
            out of the program (``0``: only those no student uses). The manifest records the
            largest change of a probability this makes on the run's samples
        root: if given, ``directory`` must stay inside it (no ``..``, absolute path or link
            leading out): what the App passes, so a user cannot write elsewhere
        overwrite: replace an existing export in ``directory``
        user: who exports (recorded in the manifest; the OS user by default)

    Returns:
        the manifest (a dict) of the written export; ``manifest["directory"]`` is where it is,
        ``manifest["bytes"]`` the size of its files together
    """
    target = _target(directory, root)
    prune = number(prune, "the pruning level", 0, 1e6)
    if os.path.lexists(target) and not overwrite:
        raise InvalidRequest(f"'{target}' already exists: choose another name, or overwrite it")
    run = load_students(samples, key)
    revision, state = _state_at(run, revision)
    concepts_run = require_run(samples, run.config["concepts_field"], CONCEPTS_METHOD, "concepts")
    clip = load_clip(concepts_run["model"], concepts_run["pretrained"], device="cpu")
    texts = make_corpus(concepts_run["concepts"]).texts(concepts_run["template"])[: len(run.concepts)]
    embeddings = run_text_embeddings(concepts_run, texts)
    kept = np.flatnonzero(np.abs(state.weight).max(axis=0) > prune)
    mean, std = (np.asarray(run.config[name], dtype=np.float32) for name in ("concept_mean", "concept_std"))
    path = StudentPath(clip.model, embeddings[kept], concepts_run["n_segments"], concepts_run["spatial_weight"],
                       mean[kept], std[kept], state.weight[:, kept], state.bias)
    preprocess = {name: clip.model.visual.preprocess_cfg[name]
                  for name in ("size", "mean", "std", "interpolation", "resize_mode")}
    program = script(path, preprocess["size"])
    tensors = dict(weight=state.weight, bias=state.bias, concept_mean=mean, concept_std=std,
                   concept_embeddings=embeddings, kept=kept)
    manifest = dict(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        dataset=dataset_of(samples).name,
        run={"key": key, "uid": run.uid, "revision": revision, "concepts_field": run.config["concepts_field"],
             "teacher_field": run.config["teacher_field"]},
        exported_by=user or store.current_user(),
        exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        classes=run.classes,
        concepts=len(run.concepts),
        concepts_kept=len(kept),
        pruned_below=prune,
        prune_max_change=_prune_change(run, state, kept),
        threshold=run.threshold,
        extractor={"model": concepts_run["model"], "pretrained": concepts_run["pretrained"],
                   "weights": weights_id(clip), "template": concepts_run["template"],
                   "grid": list(path.grid), "n_segments": path.n_segments, "spatial_weight": path.spatial_weight},
        preprocess={**preprocess, "size": list(preprocess["size"])},
        versions={name: _version(name) for name in ("fiftyone-inficond", "torch", "open_clip_torch", "fiftyone")},
    )
    with _staging(target, overwrite) as folder:
        save_program(program, folder / PROGRAM)
        safetensors.torch.save_file({k: torch.as_tensor(np.asarray(v)).contiguous() for k, v in tensors.items()},
                                    folder / TENSORS)
        (folder / CORPUS).write_text("".join(f"{name}\n" for name in run.concepts), encoding="utf-8")
        manifest["files"] = {name: file_digest(folder / name) for name in (PROGRAM, TENSORS, CORPUS)}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        size = sum(entry.stat().st_size for entry in folder.iterdir())
    return {**manifest, "directory": str(target), "bytes": size}


def _prune_change(run, state, kept):
    """The largest change of a student probability on the run's samples from leaving out all
    concepts but ``kept``."""
    pruned = np.zeros_like(state.weight)
    pruned[:, kept] = state.weight[:, kept]
    full, less = (expit(run.inputs @ w.T + state.bias) for w in (state.weight, pruned))
    return float(np.abs(full - less).max(initial=0.0))


def _state_at(run, revision):
    if revision is None:
        return run.revision, run.state
    revision = whole_number(revision, "the revision to export", 0)
    return store.load_state(run.samples, run.key, run.uid, revision)


def _target(directory, root):
    """The absolute export folder; inside ``root`` (after following links) when ``root`` is given."""
    if root is None:
        return Path(directory).absolute()
    root = Path(root).absolute()
    target = (root / directory).absolute()
    inside = Path(os.path.realpath(target)).is_relative_to(os.path.realpath(root))
    if not str(directory).strip() or not inside or ".." in Path(directory).parts or target == root:
        raise InvalidRequest(f"Name the export with a plain folder name inside '{root}'; got {str(directory)!r}")
    return target


@contextlib.contextmanager
def _staging(target, overwrite):
    """A temporary folder beside ``target``, renamed to ``target`` once the block completes
    (the old ``target`` is replaced only then), and removed if anything fails."""
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        try:
            staging.mkdir(parents=True)
            yield staging
        except OSError as e:
            raise InvalidRequest(f"Could not write the export to '{target.parent}' ({e.strerror or e}): "
                                 f"free some space or choose a folder you can write to") from e
        if os.path.lexists(target):
            if not overwrite:
                raise InvalidRequest(f"'{target}' already exists: choose another name, or overwrite it")
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        else:
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class StudentExport:
    """A checked export: its manifest, the students' tensors and the loaded program.

    Attributes:
        directory: the export folder
        manifest: ``manifest.json`` as a dict
        tensors: name → tensor from ``students.safetensors``
        program: the path as a callable module: ``(probabilities, concept_vectors) = program(images)``
    """

    directory: Path
    manifest: dict
    tensors: dict
    program: torch.nn.Module

    @property
    def classes(self):
        return list(self.manifest["classes"])

    @property
    def kept_concepts(self):
        """Names of the concepts the program computes, in its column order."""
        names = (self.directory / CORPUS).read_text(encoding="utf-8").splitlines()
        return [names[i] for i in self.tensors["kept"].tolist()]

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
    """Reads an export, refusing one whose files escape its folder or differ from the manifest.

    Raises:
        MissingFile: ``directory`` holds no export
        InvalidRequest: a file is missing, altered, a link, outside the folder, or not in a safe format
    """
    directory = Path(directory).absolute()
    manifest = _read_manifest(directory)
    for name, digest in manifest["files"].items():
        file = _inside(directory, name)
        if file_digest(file) != digest:
            raise InvalidRequest(f"'{name}' of export '{directory}' differs from its manifest (altered or "
                                 f"corrupted): export the run again")
    try:
        tensors = safetensors.torch.load_file(directory / TENSORS)
        program = load_program(directory / PROGRAM)
    except Exception as e:  # any unreadable file: the message names the export to redo
        raise InvalidRequest(f"Export '{directory}' could not be read ({type(e).__name__}): "
                             "export the run again") from e
    return StudentExport(directory, manifest, tensors, program)


def _read_manifest(directory):
    if not (directory / MANIFEST).is_file():
        raise MissingFile(f"'{directory}' is not a student export (no {MANIFEST}): choose an export folder")
    file = _inside(directory, MANIFEST)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(f"The manifest of '{directory}' is not valid JSON: export the run again") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidRequest(f"'{directory}' is not a version-{FORMAT_VERSION} student export: export the run again")
    if set(manifest.get("files", {})) != {PROGRAM, TENSORS, CORPUS}:
        raise InvalidRequest(f"The manifest of '{directory}' does not list the export's files: export the run again")
    return manifest


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
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()]
    return [p.name for p in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)]
