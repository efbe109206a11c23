"""Exporting a student run as a folder that predicts without this package (read back, checked, by
:mod:`fiftyone_inficond.deploy.loading`).

An export is a folder of four files, listed with their SHA-256 in ``manifest.json``:

- ``students.pt``: the whole path (:class:`fiftyone_inficond.deploy.path.StudentPath`) as a
  TorchScript program, with concepts that no student uses (zero weight for every class, or
  below a pruning level the caller chooses) left out. ``torch.jit.load(...)(images)`` returns
  ``(probabilities, concept_vectors)`` for ``(batch, 3, H, W)`` images preprocessed as the
  manifest's ``preprocess`` says;
- ``students.safetensors``: the students over every concept of the run (weight, bias,
  standardization), the concepts' text embeddings and which concepts the program keeps, and as
  its metadata the classes, threshold and corpus digest again (:func:`sealed_entries`);
- ``corpus.txt``: the run's concept names, one per line, in column order;
- ``manifest.json``: the run and revision, who exported it and when, the classes, the concept
  extractor (open_clip model, weights, template, grid, segments), the preprocessing, versions,
  and ``digest``, the SHA-256 of all of that: an edited manifest (classes relabelled or cut
  short) is noticed like an edited file, instead of silently renaming the students' classes; one
  edited with its digests recomputed no longer agrees with the tensors' metadata. This guards
  against edits and corruption, not forgery: whoever rewrites every file consistently writes
  another export (keep exports where only their owners can write).

Writes go to a hidden temporary folder beside the target, renamed into place when complete, so a
crash, a full disk or a refused write leaves the old export or none, never half of one. A write
only ever replaces an export (known by its manifest) holding nothing else, and never lands inside
an export: an overwrite cannot delete a folder that happened to have the export's name, nor
another export.
"""

import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import unicodedata
import uuid
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from scipy.special import expit

from fiftyone_inficond.corpus import make_corpus
from fiftyone_inficond.deploy.path import StudentPath, save_program, script
from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.fiftyone_api import dataset_of
from fiftyone_inficond.runs import CONCEPTS_METHOD, require_run
from fiftyone_inficond.students import store
from fiftyone_inficond.students.registry import load_students
from fiftyone_inficond.text_cache import file_digest, run_clip, run_text_embeddings, weights_id
from fiftyone_inficond.validation import number, whole_number

FORMAT, FORMAT_VERSION = "inficond-students", 3  # 2: the manifest carries its own digest; 3: the tensors seal it
PROGRAM, TENSORS, CORPUS, MANIFEST = "students.pt", "students.safetensors", "corpus.txt", "manifest.json"
# An export's folder name, in bytes: the staging folder beside it (``.<name>.partial-<8 hex>``) must
# stay within the 255 bytes a file name may have.
MAX_NAME_BYTES = 200
HEX_DIGEST = re.compile("[0-9a-f]{64}")
EXPORT_DIR_ENV = "INFICOND_EXPORT_DIR"


def export_root(folder=None):
    """Where the App's exports go: ``folder`` (the plugin's ``INFICOND_EXPORT_DIR`` setting), else
    ``$INFICOND_EXPORT_DIR``, else ``~/fiftyone/inficond-exports``."""
    import fiftyone as fo

    return Path(folder or os.environ.get(EXPORT_DIR_ENV) or
                Path(fo.config.default_dataset_dir).parent / "inficond-exports")


def export_students(samples, directory, key="students", revision=None, prune=0.0, root=None, overwrite=False,
                    user=None):
    """Exports student run ``key`` at ``revision`` (the newest by default) to folder ``directory``.

    Args:
        samples: the run's dataset or a view of it
        directory: the folder to create, or an export to overwrite; never inside an export. With
            ``root``, one folder name inside it (no ``/``, not starting with ``.``)
        key: the student run
        revision: a revision of its history, or ``None`` for the newest
        prune: concepts whose weight is at most this in absolute value for every class are left
            out of the program (``0``: only those no student uses). The manifest records the
            largest change of a probability this makes on the run's samples
        root: if given, ``directory`` must stay inside it (no ``..``, absolute path or link
            leading out): what the App passes, so a user cannot write elsewhere
        overwrite: replace an existing export in ``directory`` (never a folder that is not an
            export, nor one holding anything but the export's files)
        user: who exports (recorded in the manifest; the OS user by default)

    Returns:
        the manifest (a dict) of the written export; ``manifest["directory"]`` is where it is,
        ``manifest["bytes"]`` the size of its files together
    """
    target = check_export_target(directory, root, overwrite)
    prune = number(prune, "the pruning level", 0, 1e6)
    run = load_students(samples, key)
    revision, state = _state_at(run, revision)
    concepts_run = require_run(samples, run.config["concepts_field"], CONCEPTS_METHOD, "concepts")
    clip = run_clip(concepts_run)
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
    corpus = "".join(f"{name}\n" for name in run.concepts)
    with _staging(target, overwrite) as folder:
        save_program(program, folder / PROGRAM)
        # Serialized here, written by Python: a full disk is an OSError, not a library's own failure.
        (folder / TENSORS).write_bytes(safetensors.torch.save(
            {k: torch.as_tensor(np.asarray(v)).contiguous() for k, v in tensors.items()},
            metadata=sealed_entries(run.classes, run.threshold, corpus)))
        (folder / CORPUS).write_text(corpus, encoding="utf-8")
        manifest["files"] = {name: file_digest(folder / name) for name in (PROGRAM, TENSORS, CORPUS)}
        manifest["digest"] = manifest_digest(manifest)
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


def sealed_entries(classes, threshold, corpus):
    """What the students mean, kept again inside ``students.safetensors`` (as its metadata) beside
    the manifest: a manifest or corpus edited by hand, its digests recomputed, no longer agrees with
    the tensors file the manifest's own digest list pins (classes swapped, concepts renamed)."""
    return {"classes": json.dumps(list(classes)), "threshold": repr(float(threshold)),
            "corpus": hashlib.sha256(corpus.encode("utf-8")).hexdigest()}


def manifest_digest(manifest):
    """The SHA-256 of a manifest's entries but ``digest`` itself, as canonical (sorted, ASCII) JSON."""
    entries = {name: value for name, value in manifest.items() if name != "digest"}
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode("ascii")).hexdigest()


def check_export_target(directory, root=None, overwrite=False):
    """The absolute folder :func:`export_students` would write for ``directory``, ``root`` and
    ``overwrite``, or its refusal (an :class:`InvalidRequest`): what the App checks as a name is typed."""
    target = _target(directory, root)
    _require_replaceable(target, overwrite)
    return target


def _target(directory, root):
    """The absolute export folder; with ``root``, one plain folder name in it (after following links).

    Names of one folder in ``root`` are what :func:`list_exports` lists (hidden ones are not, and
    staging folders are hidden), so an export the App writes is one it can apply."""
    text = path_text(directory)
    if root is None:
        target = Path(text).absolute()
    else:
        root = Path(root).absolute()
        target = (root / text).absolute()
        parts = Path(text).parts
        inside = Path(os.path.realpath(target)).is_relative_to(os.path.realpath(root))
        if len(parts) != 1 or not text.strip() or parts[0].startswith(".") or not inside or target == root:
            raise InvalidRequest(f"Name the export with a plain folder name inside '{root}' (no '/', not starting "
                                 f"with '.'); got {text!r}")
    if len(target.name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidRequest(f"An export's folder name has at most {MAX_NAME_BYTES} bytes; "
                             f"'{target.name[:40]}...' has {len(target.name.encode('utf-8'))}: choose a shorter one")
    return target


def path_text(directory):
    """``directory`` (a path or a name) as text the file system takes, or its refusal."""
    try:
        text = os.fspath(directory)
    except TypeError:
        text = None
    if not isinstance(text, str):
        raise InvalidRequest(f"An export folder is a path or a folder name; got {directory!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = None
    if text is None or any(unicodedata.category(c) == "Cc" for c in text):
        raise InvalidRequest(f"An export folder name cannot hold control characters (NUL, line breaks...) or "
                             f"unpaired surrogates: choose a plain name; got {directory!r}")
    return text


def _require_replaceable(target, overwrite):
    """Refuses ``target`` inside an export, or existing unless it is an export that ``overwrite``
    may replace whole (its own files and nothing else: no other export, no file of the user's)."""
    parent = Path(os.path.realpath(target.parent))
    outer = next((folder for folder in (parent, *parent.parents) if is_export(folder)), None)
    if outer is not None:
        raise InvalidRequest(f"'{outer}' is an export, and an export never holds another: "
                             f"choose a folder outside it")
    if not os.path.lexists(target):
        return
    if not is_export(target):
        raise InvalidRequest(f"'{target}' exists and is not a student export, so no export replaces it: "
                             f"choose another name")
    if not overwrite:
        raise InvalidRequest(f"'{target}' already exists: choose another name, or overwrite it")
    others = sorted(set(os.listdir(target)) - {PROGRAM, TENSORS, CORPUS, MANIFEST})
    if others:
        raise InvalidRequest(f"Export '{target}' also holds {', '.join(map(repr, others[:3]))}"
                             f"{' and more' if len(others) > 3 else ''}, which replacing it would delete: "
                             f"move them out first, or choose another name")


def is_export(folder):
    """Whether ``folder`` (not a link) holds a manifest of this format, whatever its version and
    the state of its other files: what an overwrite may replace."""
    manifest = folder / MANIFEST
    if folder.is_symlink() or not folder.is_dir() or manifest.is_symlink() or not manifest.is_file():
        return False
    try:
        content = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable or not JSON: not recognisably an export
        return False
    return isinstance(content, dict) and content.get("format") == FORMAT


@contextlib.contextmanager
def _staging(target, overwrite):
    """A temporary folder beside ``target``, renamed to ``target`` once the block completes
    (the old ``target``, an export, is replaced only then), and removed if anything fails."""
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        try:
            staging.mkdir(parents=True)
            yield staging
        except OSError as e:
            raise InvalidRequest(f"Could not write the export to '{target.parent}' ({e.strerror or e}): "
                                 f"free some space or choose a folder you can write to") from e
        _require_replaceable(target, overwrite)  # again: someone may have written there meanwhile
        if os.path.lexists(target):
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old)
        else:
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
