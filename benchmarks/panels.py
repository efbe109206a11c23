"""How fast the panels answer, driven as the App drives them (FiftyOne's execution machinery, no
browser), at 10,000 samples x 1,153 concepts x 80 classes (synthetic vectors; the concepts do not
come from images here, so the knowledge panel draws no patches: their cost is
benchmarks/interactive.py's ``top_patches_s`` per concept).

Each figure is one user action, the answer including every other panel shown in the demo
workspace: ``first_paint_s`` opens the performance and knowledge panels in a process that has not
loaded the run yet; ``select_class_s`` clicks a class (performance, then knowledge redrawn; goal
1 s); ``finetune_roundtrip_s`` is Fine-tune after a 👍 until both panels are redrawn (goal 1 s);
``subset_view_s`` clicks an agreement subset (the grid's view and both panels). Medians of 5.
Run it with the plugin visible to FiftyOne: ``make bench`` sets ``FIFTYONE_PLUGINS_DIR``.
"""

import argparse
import logging
import os
import sys
import time

import fiftyone as fo

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from interactive import median_ms  # noqa: E402
from panel_driver import PanelDriver  # noqa: E402
from students import build_dataset, synthetic  # noqa: E402

from fiftyone_inficond.corpus import load_corpus  # noqa: E402
from fiftyone_inficond.students import run as runs  # noqa: E402
from fiftyone_inficond.students.run import delete_students, train_students  # noqa: E402


def median_s(fn):
    return median_ms(fn, repeat=5) / 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=80)
    args = parser.parse_args()
    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False

    corpus = load_corpus()
    concepts, teacher = synthetic(args.samples, len(corpus), args.classes)
    dataset = build_dataset(concepts, teacher, corpus)
    try:
        dataset.take(2 * args.samples // 3, seed=0).tag_samples("train")
        train_students(dataset, key="bench", train_tag="train", epochs=2)
        runs._OPEN_RUNS.clear()  # as in an App server process that has not opened the run yet
        performance = PanelDriver(dataset, "inficond_performance")
        knowledge = PanelDriver(dataset, "inficond_knowledge", performance.spaces)
        start = time.perf_counter()
        performance.event("on_load")
        knowledge.event("on_load")
        first_paint_s = time.perf_counter() - start
        scores = next(t for t in performance.data["chart"] if t["name"] == "student AP")
        ids = iter(scores["ids"] * 5)
        select_class_s = median_s(lambda: performance.event("on_click_chart", id=next(ids)))

        def fine_tune():
            name = next(t for t in knowledge.data[knowledge.state["chart"]] if t["name"] == "up")["ids"][-1]
            knowledge.event("on_click_chart", id=name)
            knowledge.event("on_fine_tune")
            assert knowledge.state["message"].startswith("✅ Revision"), knowledge.state["message"]

        finetune_roundtrip_s = median_s(fine_tune)
        subsets = [i for t in performance.data["chart"] if t["name"].startswith("positives:") for i in t["ids"]]
        picks = iter(subsets[: 5])
        subset_view_s = median_s(lambda: performance.event("on_click_chart", id=next(picks)))
        delete_students(dataset, "bench")
    finally:
        dataset.delete()
    print(f"samples={args.samples} concepts={len(corpus)} classes={args.classes} (median of 5 actions; "
          f"each answer redraws every panel shown)")
    print(
        f"first_paint_s={first_paint_s:.2f} select_class_s={select_class_s:.3f} "
        f"finetune_roundtrip_s={finetune_roundtrip_s:.3f} subset_view_s={subset_view_s:.3f} "
        f"select_class_goal_s=1 finetune_roundtrip_goal_s=1"
    )


if __name__ == "__main__":
    main()
