"""How fast the panels answer, driven as the App drives them (FiftyOne's execution machinery, no
browser), at 10,000 samples x 1,153 concepts x 80 classes (synthetic vectors; the concepts do not
come from images here, so the knowledge panel draws no patches: their cost is
benchmarks/interactive.py's ``top_patches_s`` per concept).

Each figure is one user action, the answer including every other panel shown in the demo
workspace: ``first_paint_s`` opens the performance and knowledge panels in a process that has not
loaded the run yet; ``select_class_s`` clicks a class (performance, then knowledge redrawn; goal
1 s); ``finetune_roundtrip_s`` is Fine-tune after a 👍 until both panels are redrawn (goal 1 s);
``subset_view_s`` clicks an agreement subset (the grid's view and both panels). Medians of 5.

The concept panels need concepts located in images: 10,000 generated world scenes, Broden's
1,153 concepts extracted by the world CLIP, the ground truth as teacher. ``projection_s`` is the
t-SNE of the corpus, computed once per corpus and method (then read from the database);
``embedding_first_paint_s`` opens the concept map tab beside panels that already loaded the run
(goal 1 s); ``detail_s`` picks a concept in the concept detail (the map redrawn too; goal 1 s);
``overlay_view_s`` is Show in grid: the 100 samples where the concept is most present, its heatmap
written on them and removed from the previous ones (goal 1 s).
In the browser (what a user waits: from a click to its answer drawn), the demo world (300 scenes)
in the real App at 1280x800, driven by ``tests/browser/timings.mjs``, and the same clicks (``raw_``)
on a raw-started dataset set up by the operators the App runs, with Broden's 1,153 concepts, on the
workspace the train operator installed (:func:`raw_started`): ``browser_first_paint_s``
from a fresh load (no cache) until the performance chart is drawn (median of 3; goal 8 s), then in
the knowledge tab ``browser_select_class_s`` (another class in its Class box until its header
shows it), ``browser_rank_s`` (another ranking until the answer is drawn), ``browser_thumb_s`` (a
👍 until the pending line shows it; goals 1 s) and ``browser_finetune_s`` (Fine-tune until the
saved revision is named; goal 1.5 s), medians of 5; ``browser_map_first_s``: the concept map tab's
first drawing in a fresh App server, once (goal 3 s for Broden's 1,153 concepts: ``raw_``).
Run it with the plugin visible to FiftyOne: ``make bench`` sets ``FIFTYONE_PLUGINS_DIR``.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import uuid

import fiftyone as fo
import fiftyone.operators as foo

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from app_server import app_server  # noqa: E402
from common import world_with_concepts  # noqa: E402
from panel_driver import PanelDriver, side_by_side  # noqa: E402
from students import build_dataset, synthetic  # noqa: E402
from timing import median_ms, timed  # noqa: E402

from fiftyone_inficond.corpus import load_corpus, make_corpus  # noqa: E402
from fiftyone_inficond.demo import build_world, world_teacher  # noqa: E402
from fiftyone_inficond.projection import concept_projection, project  # noqa: E402
from fiftyone_inficond.runs import CONCEPTS_METHOD, run_config  # noqa: E402
from fiftyone_inficond.students import registry as runs  # noqa: E402
from fiftyone_inficond.students.registry import delete_students, list_student_runs, train_students  # noqa: E402
from fiftyone_inficond.teacher import teacher_from_labels  # noqa: E402
from fiftyone_inficond.text_cache import run_text_embeddings  # noqa: E402
from fiftyone_inficond.workspace import save_workspace  # noqa: E402
from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL  # noqa: E402
from fiftyone_inficond.world.dataset import load_world_splits  # noqa: E402
from fiftyone_inficond.world.scenes import AIRPLANES_UNDER_CLOUDS  # noqa: E402
from fiftyone_inficond.world.teacher_model import as_fiftyone_model  # noqa: E402


def median_s(fn):
    return median_ms(fn, repeat=5) / 1000


def concept_panel_figures(n_images):
    """The concept map and concept detail at ``n_images`` world images with Broden's concepts."""
    with world_with_concepts(n_images, load_corpus()) as dataset:
        teacher_from_labels(dataset, "ground_truth")
        dataset.take(2 * n_images // 3, seed=0).tag_samples("fit")  # the world tags every scene "train"
        train_students(dataset, key="bench", train_tag="fit", epochs=2)
        config = run_config(dataset, "concepts", CONCEPTS_METHOD)
        embeddings = run_text_embeddings(config, make_corpus(config["concepts"]).texts(config["template"]))
        # what the first user of this corpus waits for, once
        projection_s, _ = timed(lambda: project(embeddings, "tsne"))
        concept_projection(dataset, "concepts", "tsne")

        spaces = side_by_side()  # the concept map and the concept detail shown at once
        middle, right = spaces.children[1], spaces.children[2]
        middle.active_child, right.active_child = middle.children[1].component_id, right.children[1].component_id
        embedding = PanelDriver(dataset, "inficond_embedding", spaces)
        detail = PanelDriver(dataset, "inficond_concept", spaces)
        open_students_first = PanelDriver(dataset, "inficond_performance", spaces)
        open_students_first.event("on_load")  # the run is loaded by the panels already open
        embedding_first_paint_s, _ = timed(lambda: embedding.event("on_load"))
        detail.event("on_load")
        concepts = iter(load_corpus().names[::97])
        detail_s = median_s(lambda: detail.event("on_change_concept", value=next(concepts)))
        overlay_view_s = median_s(lambda: detail.event("on_show_in_grid"))
        assert detail.state["message"].startswith("Grid: the 100 of the "), detail.state["message"]
        delete_students(dataset, "bench")
        return dict(projection_s=projection_s, embedding_first_paint_s=embedding_first_paint_s,
                    detail_s=detail_s, overlay_view_s=overlay_view_s)


PLUGIN = "@inficond/inficond"
TIMINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "browser", "timings.mjs")
BROWSER_GOALS = "browser_select_class_goal_s=1 browser_rank_goal_s=1 browser_thumb_goal_s=1 " \
                "browser_finetune_goal_s=1.5 browser_first_paint_goal_s=8 raw_browser_map_first_goal_s=3"


def raw_started(name, images):
    """A user's own dataset set up as the App does it: 300 scenes with ground truth and the biased
    world teacher's predictions (nothing of InFiConD), then the operators the App runs: concepts from
    the world CLIP's checkpoint with Broden's 1,153 concepts (the concept map projected with them),
    the teacher from the predictions field, students on the training tag, the workspace installed."""
    dataset = load_world_splits(name, images, 200, 100, seed=1, context_with=AIRPLANES_UNDER_CLOUDS)
    dataset.apply_model(as_fiftyone_model(world_teacher()), label_field="predictions")
    dataset.delete_sample_fields([f for f in dataset.get_field_schema() if f.startswith("world_") or f == "caption"])
    for operator, params in (
        ("compute_concepts", dict(model=WORLD_MODEL, pretrained="checkpoint file",
                                  checkpoint={"absolute_path": WORLD_CHECKPOINT}, corpus_source="broden")),
        ("import_teacher_scores", dict(source="labels", label_field="predictions")),
        ("train_students", dict(train_tag="train", open_workspace=True)),
    ):
        done = foo.execute_operator(f"{PLUGIN}/{operator}", ctx=dict(view=dataset.view(), params=params))
        if done.error:
            raise RuntimeError(f"{operator}: {done.error_message or done.error}")
    return dataset


def browser_figures(raw=False):
    """Click-to-answer seconds in the real App (``tests/browser/timings.mjs``): on the demo world, or
    (``raw``) on the installed workspace of a raw-started dataset."""
    name = f"inficond-bench-app-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as root:
        if raw:
            dataset = raw_started(name, os.path.join(root, "world"))
        else:
            dataset, _ = build_world(name, images=os.path.join(root, "world"))  # the demo's 300 scenes
            save_workspace(dataset)
        try:
            with app_server(name, os.path.join(root, "exports"), os.path.join(root, "server.log")) as url:
                done = subprocess.run(["node", TIMINGS, url], capture_output=True, text=True, timeout=1200)
        finally:
            for key in list_student_runs(dataset):
                delete_students(dataset, key)
            dataset.delete()
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if "error" in figures:
        raise RuntimeError(f"the browser timings stopped: {figures['error']}")
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--browser-only", action="store_true", help="only the timings in the real App")
    args = parser.parse_args()
    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False

    browser = browser_figures()
    raw = {f"raw_{key}": value for key, value in browser_figures(raw=True).items()}
    browser_line = " ".join(f"{key}={value:.3f}" for key, value in {**browser, **raw}.items()) + " " + BROWSER_GOALS
    if args.browser_only:
        print(browser_line)
        return
    corpus = load_corpus()
    concepts, teacher = synthetic(args.samples, len(corpus), args.classes)
    dataset = build_dataset(concepts, teacher, corpus)
    try:
        dataset.take(2 * args.samples // 3, seed=0).tag_samples("train")
        train_students(dataset, key="bench", train_tag="train", epochs=2)
        runs._OPEN_RUNS.clear()  # as in an App server process that has not opened the run yet
        performance = PanelDriver(dataset, "inficond_performance")
        knowledge = PanelDriver(dataset, "inficond_knowledge", performance.spaces)
        first_paint_s, _ = timed(lambda: (performance.event("on_load"), knowledge.event("on_load")))
        scores = next(t for t in performance.data["chart"] if t["name"] == "student AP")
        ids = iter(scores["ids"] * 5)
        select_class_s = median_s(lambda: performance.event("on_click_chart", id=next(ids)))

        def fine_tune():
            name = next(t for t in knowledge.data["chart"] if t["name"] == "up")["ids"][-1]
            knowledge.event("on_click_chart", id=name)
            knowledge.event("on_fine_tune")
            assert knowledge.state["message"].startswith("✅ Revision"), knowledge.state["message"]

        finetune_roundtrip_s = median_s(fine_tune)
        subsets = [i for t in performance.data["chart"] if " positives: " in f" {t['name']}" for i in t["ids"]]
        picks = iter(subsets[: 5])
        subset_view_s = median_s(lambda: performance.event("on_click_chart", id=next(picks)))
        delete_students(dataset, "bench")
    finally:
        dataset.delete()
    concept_panels = concept_panel_figures(args.images)
    print(f"samples={args.samples} concepts={len(corpus)} classes={args.classes}; concept panels: {args.images} "
          f"world images x {len(corpus)} concepts (median of 5 actions; each answer redraws every panel shown)")
    print(
        f"first_paint_s={first_paint_s:.2f} select_class_s={select_class_s:.3f} "
        f"finetune_roundtrip_s={finetune_roundtrip_s:.3f} subset_view_s={subset_view_s:.3f} "
        + " ".join(f"{key}={value:.3f}" for key, value in concept_panels.items())
        + " select_class_goal_s=1 finetune_roundtrip_goal_s=1 embedding_first_paint_goal_s=1 detail_goal_s=1"
        " overlay_view_goal_s=1 " + browser_line
    )


if __name__ == "__main__":
    main()
