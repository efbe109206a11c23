"""Property-based tests over the public inputs: whatever a caller passes, the library either
accepts it and round-trips it, or refuses it with its own message (an ``InficondError``, never
an exception from numpy, torch, mongoengine or Lightning) and leaves nothing written."""

import hashlib
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, unique_name
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.corpus import check_template, load_corpus
from fiftyone_inficond.deploy.export import CORPUS, MANIFEST, PROGRAM, TENSORS, export_students
from fiftyone_inficond.deploy.loading import list_exports, load_export
from fiftyone_inficond.errors import InficondError
from fiftyone_inficond.extraction import prepare_concepts
from fiftyone_inficond.students.registry import list_student_runs, load_students, rename_students, train_students
from fiftyone_inficond.teacher import set_teacher_scores, teacher_scores, to_probabilities

# Deterministic in CI: the same examples every run, no deadline on database round trips.
examples = lambda n: settings(  # noqa: E731
    max_examples=n,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

names = st.text(alphabet=string.ascii_letters + string.digits + " _-.$é👍\n\0", max_size=12)
anything = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(), st.text(max_size=4),
                     st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def mostly(valid, invalid, odds=3):
    """Valid values ``odds`` times as often as invalid ones, so that both acceptance and refusal
    are exercised when several inputs must all be valid at once."""
    return st.sampled_from([valid] * odds + [invalid]).flatmap(lambda strategy: strategy)


@pytest.fixture(scope="module")
def dataset(coco128_base):
    dataset = coco128_base.limit(12).clone(unique_name())
    yield dataset
    dataset.delete()


def _state(dataset, field):
    dataset.reload()
    values = dataset.values(field) if dataset.has_sample_field(field) else None
    return fiftyone_api.stored_run_config(dataset, field), sorted(dataset.get_field_schema()), repr(values)


@st.composite
def teacher_inputs(draw):
    """A score matrix and class list: mostly well-formed (so acceptance is exercised), often not."""
    n_rows, n_cols = draw(st.sampled_from([12, 12, 12, 11, 13])), draw(st.integers(0, 4))
    elements = draw(mostly(st.just(st.floats(0, 1) | st.floats(-30, 30)),
                           st.just(st.floats(-1e6, 1e6) | st.sampled_from([np.nan, np.inf]))))
    scores = draw(arrays(np.float64, (n_rows, n_cols), elements=elements))
    well_formed = st.lists(st.text(string.ascii_letters, min_size=1, max_size=6), min_size=n_cols, max_size=n_cols,
                           unique=True)
    classes = draw(mostly(well_formed, st.one_of(st.lists(names, max_size=4), names,
                                                 st.lists(st.integers(0, 3), max_size=4))))
    return scores, classes


@examples(40)
@given(inputs=teacher_inputs())
def test_teacher_matrices_and_class_lists(dataset, inputs):
    scores, classes = inputs
    before = _state(dataset, "teacher")
    try:
        set_teacher_scores(dataset, scores, classes, overwrite=True)
    except InficondError as refusal:
        event(f"refused: {str(refusal)[:40]}")
        assert _state(dataset, "teacher") == before
        return
    stored, stored_classes = teacher_scores(dataset)
    assert stored_classes == [str(c) for c in classes]
    np.testing.assert_allclose(stored, to_probabilities(scores)[0], rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def tiny_clip(tiny_checkpoint):
    return load_clip(TINY_MODEL, tiny_checkpoint, device="cpu")


@examples(40)
@given(corpus=mostly(st.lists(names, max_size=6), st.one_of(names, anything)),
       template=mostly(st.sampled_from(["a photo of {}.", "{}", "{} {{texture}}"]),
                       st.one_of(st.sampled_from(["{x}", "{0} {1}", "{{}}", "{}{}", "{!r}", "{"]), names)))
def test_corpora_and_templates(dataset, tiny_clip, corpus, template):
    before = _state(dataset, "concepts")
    try:
        _, accepted = prepare_concepts(dataset, tiny_clip, corpus=corpus, template=template, overwrite=True)
    except InficondError as refusal:
        event(f"refused: {str(refusal)[:40]}")
        assert _state(dataset, "concepts") == before
        return
    assert template.format("wing").count("wing") >= 1 and check_template(template) == template
    config = fiftyone_api.stored_run_config(dataset, "concepts")
    assert config["concepts"] == list(accepted.names) and config["corpus_id"] == load_corpus(corpus).id
    assert config["template"] == template


@pytest.fixture(scope="module")
def trained(distilled_base):
    dataset = distilled_base.clone(unique_name())
    run = train_students(dataset, key="props", epochs=1)
    yield run
    dataset.delete()


def instructions(concepts):
    """``{class: [concepts]}``, mostly well-formed; invalid names, shapes and (through the
    other direction's concepts) contradictions now and then."""
    concept = mostly(st.sampled_from(concepts), st.sampled_from(["moon", "", "Sky", "sky", "grass"]), 9)
    cls = mostly(st.sampled_from(["person", "car", "dog"]), st.sampled_from(["unicorn", ""]), 9)
    return mostly(
        st.dictionaries(cls, st.lists(concept, min_size=1, max_size=3), min_size=1, max_size=2),
        st.one_of(st.none(), st.dictionaries(cls, st.one_of(concept, anything), max_size=2),
                  st.lists(concept, max_size=2), anything),
        odds=5,
    )


@examples(40)
@given(up=instructions(["sky", "road"]), down=instructions(["grass", "wheel"]),
       factor=mostly(st.floats(1.01, 100), st.one_of(st.floats(), st.sampled_from([1, 100, 101]), anything), 7),
       epochs=mostly(st.sampled_from([1, 2]), st.sampled_from([-1, 0, None, 1.5, True, "2", 10**9]), 7))
def test_tuning_instructions(trained, up, down, factor, epochs):
    revision = trained.newest_revision()
    weight = trained.weight.copy()
    try:
        entry = trained.tune(up=up, down=down, factor=factor, epochs=epochs)
    except InficondError as refusal:
        event(f"refused: {str(refusal)[:40]}")
        assert trained.newest_revision() == revision == trained.revision
        assert np.array_equal(trained.weight, weight)
        return
    assert entry["revision"] == revision + 1 == trained.newest_revision()
    assert 1 < float(factor) <= 100 and epochs in (1, 2)
    state = trained.state
    assert (state.weight >= state.lower).all() and (state.weight <= state.upper).all()
    for change in entry["change"]:
        direction = change["direction"]
        assert change["concept"] in ((up if direction == "up" else down) or {}).get(change["class"], [])


@examples(40)
@given(new_key=mostly(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.one_of(names, anything)))
def test_run_keys(trained, new_key):
    samples = trained.samples
    try:
        rename_students(samples, "props", new_key)
    except InficondError as refusal:
        event(f"refused: {str(refusal)[:40]}")
        assert list_student_runs(samples) == ["props"]
        return
    assert isinstance(new_key, str) and new_key.isidentifier()
    assert list_student_runs(samples) == [new_key]
    assert load_students(samples, new_key).uid == trained.uid
    rename_students(samples, new_key, "props")


@examples(40)
@given(revision=mostly(st.integers(-1, 6), anything | st.integers(2**62, 2**64)))
def test_revisions(trained, revision):
    newest = trained.newest_revision()
    try:
        entry = trained.revert(revision)
    except InficondError as refusal:
        event(f"refused: {str(refusal)[:40]}")
        assert trained.newest_revision() == newest
        return
    assert not isinstance(revision, bool) and 0 <= revision <= newest
    assert entry["reverted_to"] == revision and entry["revision"] == newest + 1


@st.composite
def vectors(draw, n_samples, n_concepts):
    """Concept vectors someone wrote by hand: mostly the run's width and float32, often not."""
    width = draw(mostly(st.just(n_concepts), st.integers(0, n_concepts + 5)))
    dtype = draw(mostly(st.sampled_from([np.float32, np.float16, np.float64]), st.sampled_from([np.int64, np.bool_,
                                                                                                np.str_])))
    values = draw(mostly(st.floats(0, 1), st.sampled_from([np.nan, np.inf, -1.0, 2.0])))
    return np.full((n_samples, width), values).astype(dtype)


@pytest.fixture(scope="module")
def hand_written(distilled_base):
    dataset = distilled_base.clone(unique_name())  # a view's clone would not keep the concept run
    yield dataset
    dataset.delete()


@examples(15)
@given(data=st.data())
def test_concept_vectors_of_any_width_kind_and_value(hand_written, data):
    n_concepts = len(fiftyone_api.stored_run_config(hand_written, "concepts")["concepts"])
    written = data.draw(vectors(len(hand_written), n_concepts))
    hand_written.set_values("concepts", list(written))
    try:
        run = train_students(hand_written, key="hand", epochs=1, budget=None, overwrite=True)
    except InficondError as refusal:
        event(f"refused: {str(refusal)[:40]}")
        return
    assert written.shape[1] == n_concepts and written.dtype.kind in "fiub" and np.isfinite(written).all()
    assert run.weight.shape[1] == n_concepts


export_names = st.one_of(
    st.text(alphabet="ab ./_-\0\né👍", max_size=8),
    st.sampled_from(["colleague", "colleague/students.pt", "colleague/inner", "team", "team/x", "team/x/deeper",
                     "team/z", ".", "..", "../out", "/", "", " ", ".hidden", "x" * 201, "é" * 100, "new"]),
)


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    """A folder of exports: a colleague's, and a plain folder 'team' of two more."""
    root = tmp_path_factory.mktemp("exports")
    export_students(trained.samples, root / "colleague", key="props")
    for name in ("x", "y"):
        shutil.copytree(root / "colleague", root / "team" / name)
    return root


def _files(root):
    return {path.relative_to(root): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in root.rglob("*") if path.is_file()}


@examples(60)
@given(name=export_names, in_app=st.booleans(), overwrite=st.booleans())
def test_export_names_and_nesting(trained, exports, name, in_app, overwrite):
    """A name is refused, or its export round-trips (loads; listed when the App wrote it) without
    touching any other file, export or not, and never inside another export."""
    assume(in_app or ".." not in Path(name).parts)  # the library's own callers may write anywhere: not here
    before = _files(exports)
    directory, root = (name, exports) if in_app else (f"{exports}/{name}", None)
    try:
        manifest = export_students(trained.samples, directory, key="props", root=root, overwrite=overwrite)
    except InficondError as refusal:
        event(f"refused: {str(refusal).replace(str(exports), '<root>')[:50]}")
        assert _files(exports) == before
        return
    target = Path(manifest["directory"])
    inside = target.relative_to(exports)
    event("exported" + (" over an export" if any(path.is_relative_to(inside) for path in before) else ""))
    assert load_export(target).manifest["digest"] == manifest["digest"]
    assert not in_app or (inside.parts == (Path(name).name,) and inside.name in list_exports(exports))
    assert not any((exports / parent / MANIFEST).exists() for parent in inside.parents)
    assert overwrite or not any(path.is_relative_to(inside) for path in before)
    after = _files(exports)
    assert {path for path in after if path.is_relative_to(inside)} == {inside / f for f in (PROGRAM, TENSORS, CORPUS,
                                                                                             MANIFEST)}
    elsewhere = lambda files: {p: d for p, d in files.items() if not p.is_relative_to(inside)}  # noqa: E731
    assert elsewhere(after) == elsewhere(before)
