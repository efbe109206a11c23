"""The concept map and concept detail panels through FiftyOne's execution machinery, on the real
embedded MongoDB: a lasso filters the knowledge panel, the detail's grid is sorted by presence
with the concept's heatmap, 👍 from the detail is the knowledge panel's, search finds and adds."""

import re
import sys

import fiftyone.operators as foo
import numpy as np
import pytest
from panel_driver import PanelDriver, charts, find, named, ranked

from fiftyone_inficond.fiftyone_api import database
from fiftyone_inficond.projection import COLLECTION, is_projected
from fiftyone_inficond.students.registry import load_students, train_students

APP_STEPS = ("reload_dataset", "set_view", "set_active_fields")  # the order the browser needs


@pytest.fixture
def world(distilled):
    distilled.take(80, seed=0).tag_samples("train")
    train_students(distilled, key="panel", train_tag="train", epochs=3, budget=12)  # 12 used: 10 rows shown
    performance = PanelDriver(distilled, "inficond_performance")
    panels = {name: PanelDriver(distilled, f"inficond_{name}", performance.spaces)
              for name in ("embedding", "knowledge", "concept")}
    return distilled, panels


def test_a_lasso_over_three_concepts_filters_the_knowledge_panel_to_them(world):
    dataset, panels = world
    embedding, knowledge = panels["embedding"], panels["knowledge"]
    embedding.event("on_load")
    (points,) = [t for t in embedding.data["chart"] if t["name"] == "concepts"]
    assert len(points["ids"]) == len(dataset.get_run_info("concepts").config.concepts)
    lassoed = points["ids"][5:8]
    requests = embedding.event("on_select_chart", data=[{"id": i, "trace": "concepts"} for i in lassoed])
    names = [i.split("|", 1)[1] for i in lassoed]
    assert embedding.state["focus"].startswith("**Knowledge panel shows only 3:**")
    (shown,) = [p for p in find(requests, "show_panel_output") if p["panel_id"] == knowledge.id]
    assert sorted(ranked(charts(shown["output"])["chart"])) == sorted(names)  # in the same answer
    knowledge.event("on_load")  # and it stays so
    assert sorted(ranked(knowledge.data["chart"])) == sorted(names)
    assert "only the 3 concepts selected" in knowledge.state["header"]

    embedding.event("on_clear_focus")
    knowledge.event("on_load")
    assert len(ranked(knowledge.data["chart"])) == 10


def test_show_in_grid_sorts_by_the_concepts_stored_presence_with_its_heatmap(world):
    dataset, panels = world
    detail = panels["concept"]
    detail.event("on_load")
    concept = detail.state["controls"]["concept"]
    requests = detail.event("on_show_in_grid")
    steps = [r["operator_uri"].rsplit("/", 1)[-1] for r in requests]
    # the overlay field is new: the App reloads its schema, then shows the view, then the heatmap
    assert [s for s in steps if s in APP_STEPS] == list(APP_STEPS)
    (view,) = find(requests, "set_view")
    (stage,) = view["view"]
    kwargs = dict(stage["kwargs"])
    assert stage["_cls"] == "fiftyone.core.stages.Select" and kwargs["ordered"]
    shown = kwargs["sample_ids"]

    column = dataset.get_run_info("concepts").config.concepts.index(concept)
    held_out = dataset.match_tags("train", bool=False)
    ids, vectors = held_out.values(["id", "concepts"])
    presence = dict(zip(ids, (v[column] for v in vectors)))
    # the held-out split's top quarter by presence (every sample of it, sorted, would say nothing)
    assert len(shown) == -(-len(ids) // 4) and len(shown) < len(ids)
    assert [presence[i] for i in shown] == sorted(presence.values(), reverse=True)[: len(shown)]
    dataset.reload()
    assert sorted(dataset.exists("concepts_overlay").values("id")) == sorted(shown)
    assert set(dataset.values("concepts_overlay.concept")) - {None} == {concept}
    assert detail.state["message"].startswith(f"Grid: the {len(shown)} of the {len(ids)} held-out samples "
                                              f"where '{concept}' is most present")
    assert "similarity 0." in detail.state["message"] and "clear below" in detail.state["message"]  # its legend

    requests = detail.event("on_show_in_grid")  # again: the field is reused, no reload
    assert not find(requests, "reload_dataset")


def test_thumbs_up_in_the_detail_is_pending_in_the_knowledge_panel_and_fine_tunes(world):
    dataset, panels = world
    detail, knowledge = panels["concept"], panels["knowledge"]
    detail.event("on_load")
    cls, concept = detail.state["controls"]["cls"], detail.state["controls"]["concept"]
    assert (len(detail.data["whatif"]) == 8
            and {t["name"] for t in detail.data["whatif"]} >= {"accuracy", "F1", "recall", "precision"})
    assert [t["name"] for t in detail.data["presence"]] == ["teacher's predicted positives",
                                                            "teacher's predicted negatives"]
    detail.event("on_up")
    assert detail.state["pending_here"] == ["up"]
    knowledge.event("on_load")
    pending = rf"🟦 👍 \*{re.escape(concept)}\*( \(\+ [^)]+\))? for {re.escape(cls)}"  # (+ its synonyms)
    assert re.search(pending, knowledge.state["pending"])
    detail.event("on_fine_tune")
    run = load_students(dataset, "panel")
    assert [e["kind"] for e in run.history] == ["train", "tune"]
    assert named(run.history[-1]["instructions"], concept) == [{"class": cls, "concept": concept, "direction": "up"}]
    assert detail.state["message"].startswith("✅ Revision 1 saved") and detail.state["pending_here"] == []


def test_clicking_a_concept_opens_its_detail(world):
    dataset, panels = world
    embedding, detail = panels["embedding"], panels["concept"]
    embedding.event("on_load")
    requests = embedding.event("on_click_chart", id="concept|sky", trace="concepts")
    (opened,) = find(requests, "open_panel")
    assert opened["name"] == "inficond_concept" and opened.get("layout") is None  # a tab, never a new split
    detail.event("on_load")
    assert detail.state["controls"]["concept"] == "sky" and detail.state["header"].startswith("**sky** for")


def test_search_finds_by_name_and_meaning_and_adds_a_missing_concept(world):
    dataset, panels = world
    embedding = panels["embedding"]
    embedding.event("on_load")
    traces = [t["name"] for t in embedding.data["chart"]]
    embedding.event("on_search", value="  sky ")
    assert "sky" in embedding.state["found"] and not embedding.state["can_add"]
    width = len(dataset.get_run_info("concepts").config.concepts)
    embedding.event("on_search", value="zebra crossing")
    assert embedding.state["can_add"] and len(embedding.state["found"]) > 0
    embedding.event("on_add")
    dataset.reload()
    assert dataset.get_run_info("concepts").config.concepts[-1] == "zebra crossing"
    assert len(dataset.first().concepts) == width + 1
    assert embedding.state["message"].startswith("✅ Added 'zebra crossing'")
    (new,) = [t for t in embedding.data["chart"] if t["name"] == "not in the student"]
    assert new["ids"] == ["concept|zebra crossing"]
    assert not embedding.state["can_add"]  # it is a concept now
    assert [t["name"] for t in embedding.data["chart"]] == traces  # the same traces in the same places
    (found,) = [t for t in embedding.data["chart"] if t["name"] == "found"]  # ringed and labelled on the map
    assert "concept|zebra crossing" in found["ids"] and found["mode"] == "markers+text"

    assert embedding.state["n_added"] == 1  # the students do not use it yet
    embedding.event("on_extend")
    assert embedding.state["message"].startswith("✅ Student run 'panel_extended' trained with 1 added concept")
    extended = load_students(dataset, "panel_extended")
    assert extended.concepts[-1] == "zebra crossing" and extended.history[0]["extends"]["key"] == "panel"
    (new,) = [t for t in embedding.data["chart"] if t["name"] == "not in the student"]
    assert embedding.state["n_added"] == 0 and new["ids"] == []  # the trace stays, empty: traces keep their places


def test_a_refresh_shows_the_search_without_searching_again_until_the_phrase_changes(world, monkeypatch):
    _, panels = world
    embedding, knowledge = panels["embedding"], panels["knowledge"]
    middle = embedding.spaces.children[1]
    middle.active_child = embedding.id  # the map is shown: the knowledge panel's answers redraw it
    panel_module = sys.modules[type(foo.get_operator("@inficond/inficond/inficond_embedding")).__module__]
    searched, search = [], panel_module.search_concepts
    monkeypatch.setattr(panel_module, "search_concepts",
                        lambda samples, phrase, *args: searched.append(phrase) or search(samples, phrase, *args))
    embedding.event("on_load")
    embedding.event("on_search", value="blue sky")
    found = embedding.state["found"]
    embedding.event("on_load")
    knowledge.event("on_load")
    other = next(c for c in knowledge.state["classes"] if c != knowledge.state["controls"]["cls"])
    requests = knowledge.event("on_change_cls", value=other)
    assert [p for p in find(requests, "patch_panel_state") if p["panel_id"] == embedding.id]  # the map redrawn
    assert searched == ["blue sky"] and embedding.state["found"] == found
    embedding.event("on_search", value="green grass")
    assert searched == ["blue sky", "green grass"]
    names = tuple(embedding.state["found"])  # any names: only the text model differs from the last search
    panel_module._search(world[0].name, "concepts", "green grass", names, "text-model-a")
    panel_module._search(world[0].name, "concepts", "green grass", names, "text-model-b")
    assert searched == ["blue sky", "green grass", "green grass", "green grass"]


def test_a_projection_method_is_a_choice_and_kept(world):
    dataset, panels = world
    embedding = panels["embedding"]
    embedding.event("on_load")
    before = {t["name"]: t for t in embedding.data["chart"]}["concepts"]
    field = embedding.state["header"].split("of '")[1].split("'")[0]
    database()[COLLECTION].delete_many({"method": "pca"})  # as where no one has projected with PCA yet
    assert not is_projected(dataset, field, "pca")
    requests = embedding.event("on_change_method", value="pca")
    # said at once, before the map is computed: the first answer's state, then the triggered computation
    (first, *_) = [r["params"]["state"] for r in requests if r["operator_uri"].endswith("patch_panel_state")]
    assert first["message"].startswith("⏳ Projecting the concepts of ") and " with PCA: " in first["message"]
    after = {t["name"]: t for t in embedding.data["chart"]}["concepts"]
    assert after["ids"] == before["ids"] and not np.allclose(after["x"], before["x"])
    assert "by PCA" in embedding.state["header"]
    embedding.event("on_load")
    assert embedding.state["controls"]["method"] == "pca"
