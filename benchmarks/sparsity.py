"""Sparse students against scikit-learn's L1 logistic regression, where users are: world scenes
with Broden's 1,153 concepts (the default corpus), in one run.

Per world (the user study's seeds; the clean teacher; 600 training scenes, 600 held out):
concepts from the world CLIP, students trained by ``train_students`` with its defaults (the
budget chosen on the path), and the peer, one ``LogisticRegression(penalty="l1",
solver="saga")`` per class over a grid of C, fit to the same standardized training vectors and
the same soft teacher targets (each sample twice, label 1 weighted p and label 0 weighted
1 - p: exactly BCE on soft targets). Both are judged on the held-out scenes by the same
agreement AP (student scores against the teacher's decisions). The peer's AP at our number of
effective concepts (NEC) is interpolated along its C grid.

Ends with one line of key=value pairs (means over worlds; ``*_min`` the worst world).
"""

import argparse
import logging
import tempfile
import uuid
import warnings

import fiftyone as fo
import numpy as np
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from timing import timed

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.corpus import packaged_corpus
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.students.budget import usage
from fiftyone_inficond.students.metrics import class_metrics
from fiftyone_inficond.students.registry import delete_students, train_students
from fiftyone_inficond.students.training import TrainingConfig, class_budgets, fit_to_budgets, initial_weights
from fiftyone_inficond.students.tuning import no_bounds
from fiftyone_inficond.teacher import teacher_from_model
from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL
from fiftyone_inficond.world.dataset import load_world_splits
from fiftyone_inficond.world.teacher_model import (
    TRAINING_SCENES,
    as_fiftyone_model,
    teacher_scenes,
    train_world_teacher,
)

SEEDS = (1, 2, 3)  # the user study's worlds
PEER_C = (0.01, 0.02, 0.05, 0.1, 0.3)


def top5_share(weight):
    """Mean over students of the share of ``|weight|`` their 5 largest weights hold."""
    magnitude = np.sort(np.abs(weight), axis=1)[:, ::-1]
    return float(np.mean(magnitude[:, :5].sum(1) / np.maximum(magnitude.sum(1), 1e-12)))


def peer_path(inputs, targets, cs):
    """The peer's ``(weight, bias, fit seconds)`` at each C, one model per class warm-started along ``cs``."""
    doubled = np.concatenate([inputs, inputs])
    labels = np.r_[np.ones(len(inputs)), np.zeros(len(inputs))]
    models = [LogisticRegression(penalty="l1", solver="saga", max_iter=300, tol=1e-3, warm_start=True)
              for _ in range(targets.shape[1])]
    path = []
    for c in cs:
        def fit_all(c=c):
            for j, model in enumerate(models):
                model.set_params(C=c).fit(doubled, labels, sample_weight=np.r_[targets[:, j], 1 - targets[:, j]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            seconds, _ = timed(fit_all)
        path.append((np.stack([m.coef_[0] for m in models]), np.array([m.intercept_[0] for m in models]), seconds))
    return path


def agreement_ap(run, weight, bias, rows):
    """Mean agreement AP of linear students on ``rows`` of the run, by the run's own metric."""
    probabilities = expit(run.inputs[rows] @ weight.T + bias)
    return class_metrics(run.data.teacher[rows], probabilities, None, run.threshold).summary()["agreement_ap"]


def measure_world(seed, clip, n_train, n_heldout):
    with tempfile.TemporaryDirectory() as root:
        dataset = load_world_splits(f"inficond-sparsity-{uuid.uuid4().hex[:8]}", root, n_train, n_heldout, seed)
        try:
            compute_concepts(dataset, clip, corpus=packaged_corpus("broden"), batch_size=64, progress=False)
            teacher = as_fiftyone_model(train_world_teacher(teacher_scenes(TRAINING_SCENES, seed + 2, None)))
            teacher_from_model(dataset, teacher, batch_size=64, overwrite=True)
            train_s, run = timed(lambda: train_students(dataset, key="sparsity", train_tag="train"))
            try:
                return compare(run, train_s)
            finally:
                delete_students(dataset, "sparsity")
        finally:
            dataset.delete()


def compare(run, train_s):
    train, held = np.flatnonzero(run.data.train), np.flatnonzero(~run.data.train)
    budgets = np.asarray(run.config["class_budgets"])
    weight, bias = initial_weights(run.data.teacher[train], len(run.concepts), 0)
    lower, upper = no_bounds(weight.shape)
    config = TrainingConfig()
    fit_s, _ = timed(lambda: fit_to_budgets(run.inputs, run.data.teacher, weight, bias, lower, upper, config, budgets,
                                            rows=train))
    path_s, _ = timed(lambda: class_budgets(run.inputs, run.data.teacher, weight, bias, lower, upper, config,
                                            run.threshold, rows=train))
    nec = float(usage(run.weight).mean())
    ours = agreement_ap(run, run.weight, run.bias, held)
    peers = [(float(usage(w).mean()), agreement_ap(run, w, b, held), s)
             for w, b, s in peer_path(run.inputs[train], run.data.teacher[train], PEER_C)]
    print(f"  ours: nec {nec:.1f}, top-5 share {top5_share(run.weight):.3f}, held-out agreement AP {ours:.3f}, "
          f"fit {fit_s:.2f} s, path {path_s:.2f} s (train_students {train_s:.1f} s)")
    for c, (peer_nec, peer_ap, seconds) in zip(PEER_C, peers):
        print(f"  peer C={c:<5}: nec {peer_nec:.1f}, held-out agreement AP {peer_ap:.3f}, fit {seconds:.1f} s")
    by_nec = sorted(peers)
    nearest = min(peers, key=lambda p: abs(p[0] - nec))
    return {
        "nec": nec, "top5_share": top5_share(run.weight), "agreement_ap": ours,
        "peer_agreement_ap_at_nec": float(np.interp(nec, [p[0] for p in by_nec], [p[1] for p in by_nec])),
        "fit_s": fit_s, "path_s": path_s, "peer_fit_s": nearest[2],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worlds", type=int, default=len(SEEDS))
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--heldout", type=int, default=600)
    args = parser.parse_args()
    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False
    clip = load_clip(WORLD_MODEL, WORLD_CHECKPOINT, device="cpu")
    results = []
    for seed in SEEDS[: args.worlds]:
        print(f"world {seed}:")
        results.append(measure_world(seed, clip, args.train, args.heldout))
    mean = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
    margin = min(r["agreement_ap"] - r["peer_agreement_ap_at_nec"] for r in results)
    print(
        f"worlds={len(results)} nec={mean['nec']:.1f} nec_max={max(r['nec'] for r in results):.1f} "
        f"top5_share={mean['top5_share']:.3f} agreement_ap={mean['agreement_ap']:.3f} "
        f"peer_agreement_ap_at_nec={mean['peer_agreement_ap_at_nec']:.3f} margin_vs_peer_min={margin:+.3f} "
        f"fit_s={mean['fit_s']:.2f} path_s={mean['path_s']:.2f} peer_fit_s={mean['peer_fit_s']:.1f} "
        f"peer_vs_fit={mean['peer_fit_s'] / mean['fit_s']:.1f} nec_goal=25 margin_goal=-0.005"
    )


if __name__ == "__main__":
    main()
