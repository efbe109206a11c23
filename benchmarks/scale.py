"""How time and memory grow from 10,000 to 100,000 samples x 1,153 concepts x 80 classes, the
streamed training path's memory at 100,000 and 300,000 samples (issue 16), and a streamed run's
from 100,000 to 1,000,000 (issue 27). Not in ``make test``.

Synthetic concept vectors and teacher scores (shaped as benchmarks/students.py's, generated in
chunks) live in real FiftyOne datasets on the real database, with a 2/3 training split. Every
measurement runs in a child process of its own that only loads the dataset (it was built by
another child), so its peak resident memory (the kernel's high-water mark, ``ru_maxrss``, and a
psutil sampler every 20 ms: the larger) is that of the work measured, imports included:

* in-memory path, at 10k and 100k: ``train_s`` (train_students, 10 epochs, reading included),
  ``load_s`` (load_students in a process that has not opened the run; the median of three),
  ``first_paint_s`` (performance and knowledge panels opened as the App opens them, run not
  loaded yet), ``tune_s`` (one 👍 + one 👎 and retraining), ``metrics_s`` (every class's
  metrics on the held-out split, nothing cached),
  ``whatif_s`` (top 10 concepts' what-if curves), ``top_concepts_s`` (the 10 concepts that most
  separate the student's wrong from right negatives; there are no images here, so no patches:
  benchmarks/interactive.py measures ``top_patches_s`` over real segments);
* writes, at 10k and 100k: ``extract`` (compute_concepts over world scenes by the world CLIP,
  Broden's 1,153 concepts: images in batches, bulk writes out; the samples' files cycle through a
  pool of 256 images) and ``teacher`` (set_teacher_scores of one ``(n, classes)`` matrix): their
  ``*_peak_mb`` at both sizes say whether memory stays flat as the dataset grows;
* streamed path: ``cache`` (the MongoDB cursor written to a float16 matrix on disk, 100k) and
  ``streamed`` (students fitted from batches read off that matrix, ``--streamed-epochs`` epochs,
  then their agreement counts and agreement AP, batch by batch;
  100k from the database's cache, 300k from a synthetic cache of the same shape, as 300k samples
  would be 1.4 GB more in a shared database).

* streamed runs, at 100k and 1M: ``train_students(streamed=True)`` (the run's own float16 cache,
  ``--streamed-epochs`` epochs down to a budget of ``--run-budget`` concepts) in one process, the
  panels' first paint and one tune in another: ``rows_1m``, ``peak_rss_mb_1m`` (the larger of
  the two), ``first_paint_s_1m``, ``train_s_1m``, ``tune_s_1m`` and their ``*_growth_1m`` (1M
  over 100k; goal: at most 12x, and the peak at most 2 GB). ``--only-streamed-runs`` measures
  only these.

Each timing's ``*_growth`` is its 100k figure over its 10k figure (goal: at most 12x). Torch and
numpy's BLAS run one thread per measurement by default (``--threads``). The children use a MongoDB server of the
benchmark's own (``--shared-database`` to use FiftyOne's). The last line holds every figure as
key=value pairs.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading

from timing import timed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N_CONCEPTS = 1153
CHUNK = 5000


# --- synthetic data, chunk by chunk ----------------------------------------------------------


def truth_matrix(n_classes, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.normal(0, 1.5, (n_classes, N_CONCEPTS)) * (rng.random((n_classes, N_CONCEPTS)) < 0.01)


def synthetic_chunks(n, n_classes, seed=0):
    """``(start, concepts float32, teacher float32)`` chunks: benchmarks/students.py's model, with the
    standardization known in closed form (shared U(0, 0.1) + own U(0, 0.1)) instead of measured."""
    import numpy as np

    truth = truth_matrix(n_classes, seed)
    mean, std = 0.25, np.sqrt(2 * 0.01 / 12)
    for start in range(0, n, CHUNK):
        rng = np.random.default_rng([seed, start])
        m = min(CHUNK, n - start)
        concepts = (0.15 + rng.random((m, 1)) * 0.1 + rng.random((m, N_CONCEPTS)) * 0.1).astype(np.float32)
        logits = ((concepts - mean) / std) @ truth.T - 2.5
        yield start, concepts, (1 / (1 + np.exp(-logits))).astype(np.float32)


# --- children ---------------------------------------------------------------------------------


class PeakMemory:
    """The process's peak resident memory in MB: a psutil sampler and the kernel's high-water mark."""

    def __init__(self):
        import psutil

        self.process, self.peak, self.done = psutil.Process(), 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def mb(self):
        self.done.set()
        self.thread.join()
        high_water = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux
        return max(self.peak, self.process.memory_info().rss, high_water) / 2**20


def quiet():
    import logging

    import fiftyone as fo

    logging.getLogger("fiftyone").setLevel(logging.WARNING)
    fo.config.show_progress_bars = False


def child_build(spec):
    """Builds a persistent dataset of ``spec["n"]`` synthetic samples, chunk by chunk."""
    import fiftyone as fo
    import numpy as np

    from fiftyone_inficond.corpus import load_corpus
    from fiftyone_inficond.runs import CONCEPTS_METHOD, record_run
    from fiftyone_inficond.teacher import set_teacher_scores

    quiet()
    corpus = load_corpus()
    dataset = fo.Dataset(spec["name"], persistent=True)
    teacher = []
    for start, concepts, scores in synthetic_chunks(spec["n"], spec["classes"]):
        dataset.add_samples(
            [fo.Sample(filepath=f"/scale/{start + i:07d}.jpg", concepts=v, tags=["train"] if (start + i) % 3 else [])
             for i, v in enumerate(concepts)],
            progress=False,
        )
        teacher.append(scores)
    record_run(dataset, "concepts", CONCEPTS_METHOD, corpus_id=corpus.id, concepts=list(corpus.names))
    set_teacher_scores(dataset, np.concatenate(teacher), [f"class_{j}" for j in range(spec["classes"])])
    return {}


def child_app(spec):
    """The in-memory path as a user's process goes through it; every timing in this process."""
    import gc

    import fiftyone as fo

    from fiftyone_inficond.students import registry as runs

    quiet()
    warm_up()
    dataset = fo.load_dataset(spec["name"])
    out = {}
    out["train_s"], run = timed(lambda: runs.train_students(dataset, key="scale", train_tag="train", overwrite=True))
    cls = run.classes[0]
    del run
    gc.collect()

    loads = []
    for _ in range(3):  # the median of three: one load of 10k samples is short and noisy on a shared machine
        loads.append(timed(lambda: runs.load_students(dataset, "scale"))[0])  # the run freed before the next
        gc.collect()
    out["load_s"] = sorted(loads)[1]

    out["first_paint_s"] = first_paint(dataset)
    run = runs.open_students(dataset, "scale")  # opened by the panels already (when they ran)
    [(best, _)], [(worst, _)] = run.top_concepts(cls, 1), run.top_concepts(cls, 1, sign="negative")
    out["tune_s"], _ = timed(lambda: run.tune(up={cls: [best]}, down={cls: [worst]}))
    run._metrics_cache.clear()  # metrics of every class, computed afresh
    out["metrics_s"], _ = timed(lambda: run.performance("validation"))
    out["whatif_s"], _ = timed(lambda: run.what_if(cls, n=10))
    out["top_concepts_s"], _ = timed(lambda: run.top_concepts(cls, 10, by="negatives"))
    runs.delete_students(dataset, "scale")
    return out


def warm_up():
    """One tiny fit first, so that no timing pays for torch's and Lightning's first call."""
    import numpy as np

    from fiftyone_inficond.students.training import TrainingConfig, fit

    rng = np.random.default_rng(0)
    weight, bias = np.zeros((2, 8), np.float32), np.zeros(2, np.float32)
    fit(rng.random((64, 8)), rng.random((64, 2)), weight, bias, weight - np.inf, weight + np.inf,
        TrainingConfig(epochs=1))


def first_paint(dataset):
    """The performance and knowledge panels' first paint, as benchmarks/panels.py measures it
    (``nan`` when the panels cannot be driven, e.g. the plugin is not visible to FiftyOne)."""
    try:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from panel_driver import PanelDriver

        from fiftyone_inficond.students import registry as runs

        runs._OPEN_RUNS.clear()
        performance = PanelDriver(dataset, "inficond_performance")
        knowledge = PanelDriver(dataset, "inficond_knowledge", performance.spaces)
        elapsed, _ = timed(lambda: (performance.event("on_load"), knowledge.event("on_load")))
        if "chart" not in performance.data:
            raise RuntimeError(f"the performance panel drew no chart: {performance.state.get('message')}")
        return elapsed
    except Exception as error:  # reported, not fatal: the other figures still stand
        print(f"first paint not measured: {error!r}", file=sys.stderr)
        return float("nan")


def child_cache(spec):
    """The MongoDB cursor streamed into a float16 matrix on disk."""
    import fiftyone as fo

    from fiftyone_inficond.students.cache import cache_inputs

    quiet()
    seconds, _ = timed(lambda: cache_inputs(fo.load_dataset(spec["name"]), spec["directory"], train_tag="train"))
    return {"cache_s": seconds}


def child_synthetic_cache(spec):
    """A cache of ``spec["n"]`` synthetic rows written straight to disk (no database)."""
    import numpy as np

    from fiftyone_inficond.students.cache import write_cache

    def chunks():
        for start, concepts, teacher in synthetic_chunks(spec["n"], spec["classes"]):
            ids = [f"{start + i:024x}" for i in range(len(concepts))]
            yield ids, concepts, teacher, np.arange(start, start + len(concepts)) % 3 != 0

    write_cache(spec["directory"], chunks())
    return {}


def child_streamed(spec):
    """Students fitted from the cache, then their agreement with the teacher (counts and AP), batch by batch."""
    import numpy as np

    from fiftyone_inficond.students.cache import InputsCache
    from fiftyone_inficond.students.streaming import (
        fit_streamed,
        streamed_agreement,
        streamed_agreement_ap,
    )
    from fiftyone_inficond.students.training import TrainingConfig

    warm_up()
    cache = InputsCache.open(spec["directory"])
    train_s, students = timed(lambda: fit_streamed(cache, TrainingConfig(epochs=spec["epochs"])))
    agreement_s, counts = timed(lambda: streamed_agreement(cache, students))
    agree = float((counts["tp"] + counts["tn"]).sum() / (len(cache) * cache.n_classes))
    agreement_ap_s, ap = timed(lambda: float(np.nanmean(streamed_agreement_ap(cache, students))))
    return {"train_s": train_s, "agreement_s": agreement_s, "agreement": agree,
            "agreement_ap_s": agreement_ap_s, "agreement_ap": ap}


def child_streamed_run(spec):
    """A streamed student run as a user's process trains it: ``train_students(streamed=True)``
    (the cursor into the run's cache, a fixed budget along its path, metrics, saving)."""
    import fiftyone as fo

    from fiftyone_inficond.students import registry as runs

    quiet()
    warm_up()
    dataset = fo.load_dataset(spec["name"])
    train_s, run = timed(lambda: runs.train_students(
        dataset, key="streamed", train_tag="train", streamed=True, cache_dir=spec["cache_dir"], epochs=spec["epochs"],
        budget=spec["budget"], overwrite=True))
    return {"train_s": train_s, "concepts_used": float(run.facts()["concepts_used"][0])}


def child_streamed_use(spec):
    """The streamed run opened by the panels (first paint, the run not loaded yet), then tuned once."""
    import fiftyone as fo

    from fiftyone_inficond.students import registry as runs

    quiet()
    warm_up()
    dataset = fo.load_dataset(spec["name"])
    out = {"first_paint_s": first_paint(dataset)}
    run = runs.open_students(dataset, "streamed")
    cls = run.classes[0]
    [(best, _)], [(worst, _)] = run.top_concepts(cls, 1), run.top_concepts(cls, 1, sign="negative")
    out["tune_s"], _ = timed(lambda: run.tune(up={cls: [best]}, down={cls: [worst]}, epochs=spec["epochs"]))
    runs.delete_students(dataset, "streamed")
    return out


def child_images(spec):
    """A pool of ``spec["pool"]`` world scenes written as PNG files into ``spec["directory"]``, and
    the Broden corpus's text embeddings under the world CLIP cached (as a user's first run caches
    them), so that no extraction timing pays for either."""
    from fiftyone_inficond.clip import load_clip
    from fiftyone_inficond.corpus import DEFAULT_TEMPLATE, load_corpus
    from fiftyone_inficond.text_cache import concept_embeddings
    from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL
    from fiftyone_inficond.world.scenes import generate_scenes

    os.makedirs(spec["directory"])
    for i, scene in enumerate(generate_scenes(spec["pool"], seed=5)):
        scene.image.save(os.path.join(spec["directory"], f"{i:04d}.png"))
    concept_embeddings(load_clip(WORLD_MODEL, WORLD_CHECKPOINT), load_corpus(), DEFAULT_TEMPLATE)
    return {}


def child_image_dataset(spec):
    """A persistent dataset of ``spec["n"]`` samples whose files cycle through the pool of images."""
    import fiftyone as fo

    quiet()
    pool = sorted(os.path.join(spec["directory"], f) for f in os.listdir(spec["directory"]))
    dataset = fo.Dataset(spec["name"], persistent=True)
    for start in range(0, spec["n"], CHUNK):
        dataset.add_samples([fo.Sample(filepath=pool[i % len(pool)])
                             for i in range(start, min(spec["n"], start + CHUNK))],
                            progress=False)
    return {}


def child_extract(spec):
    """Concepts extracted from every sample's image by the world CLIP (Broden's 1,153 concepts)."""
    import fiftyone as fo

    from fiftyone_inficond.clip import load_clip
    from fiftyone_inficond.extraction import compute_concepts
    from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL

    quiet()
    dataset = fo.load_dataset(spec["name"])
    clip = load_clip(WORLD_MODEL, WORLD_CHECKPOINT)
    elapsed, done = timed(lambda: compute_concepts(dataset, clip, batch_size=64, progress=False))
    return {"extract_s": elapsed, "images_s": done.computed / elapsed}


def child_teacher(spec):
    """Teacher scores of every sample imported from one ``(n, classes)`` matrix (which the
    caller holds, as a user holds the array they pass: its size is reported)."""
    import fiftyone as fo
    import numpy as np

    from fiftyone_inficond.teacher import set_teacher_scores

    quiet()
    dataset = fo.load_dataset(spec["name"])
    scores = np.concatenate([teacher for _, _, teacher in synthetic_chunks(spec["n"], spec["classes"])])
    seconds, _ = timed(lambda: set_teacher_scores(dataset, scores, [f"class_{j}" for j in range(spec["classes"])]))
    return {"teacher_s": seconds, "input_mb": scores.nbytes / 2**20}


CHILDREN = {"build": child_build, "app": child_app, "cache": child_cache,
            "synthetic_cache": child_synthetic_cache, "streamed": child_streamed, "images": child_images,
            "streamed_run": child_streamed_run, "streamed_use": child_streamed_use,
            "image_dataset": child_image_dataset, "extract": child_extract, "teacher": child_teacher}


def child(kind, spec):
    if spec.get("threads"):
        import torch
        from threadpoolctl import threadpool_limits  # scikit-learn's dependency

        torch.set_num_threads(spec["threads"])
        threadpool_limits(spec["threads"])  # numpy's BLAS too
    peak = PeakMemory()
    out = CHILDREN[kind](spec)
    out["peak_mb"] = peak.mb()
    print(json.dumps(out))


THREADS = [1]  # torch and BLAS threads per measurement (--threads)
DATABASE = {}  # FIFTYONE_DATABASE_URI for the children, when the benchmark runs its own server


def own_database(directory):
    """Starts a MongoDB server of the benchmark's own (FiftyOne's mongod, a free port, its data in
    ``directory``): the shared embedded one is restarted by other processes' comings and goings,
    and the 110,000 samples written here stay out of it. Returns the server's process."""
    import socket

    import pymongo
    from fiftyone.core.service import DatabaseService

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.makedirs(directory)
    server = subprocess.Popen(
        [DatabaseService.find_mongod(), "--dbpath", directory, "--port", str(port), "--bind_ip", "127.0.0.1",
         "--nounixsocket", "--logpath", os.path.join(directory, "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pymongo.MongoClient(port=port, serverSelectionTimeoutMS=30000).admin.command("ping")
    DATABASE["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"
    return server


def spawn(kind, **spec):
    """Runs one measurement in a fresh process; its figures (the last line it prints)."""
    env = {**os.environ, **DATABASE}
    spec = {**spec, "threads": THREADS[0]}
    plugins = os.path.join(ROOT, ".plugins")
    if os.path.isdir(plugins) and not env.get("FIFTYONE_PLUGINS_DIR"):
        env["FIFTYONE_PLUGINS_DIR"] = plugins  # the panels, as `make bench` makes them visible
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind, json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {spec} failed:\n{done.stderr[-3000:]}")
    if "not measured" in done.stderr:
        print(done.stderr.strip().splitlines()[-1], file=sys.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- parent -----------------------------------------------------------------------------------


def delete_datasets(names):
    done = subprocess.run([sys.executable, "-c", "import fiftyone as fo, sys\n"
                           "[fo.delete_dataset(n) for n in sys.argv[1:] if fo.dataset_exists(n)]", *names])
    if done.returncode:
        print("could not delete the benchmark's datasets", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--streamed-large", type=int, default=300_000)
    parser.add_argument("--streamed-epochs", type=int, default=2)
    parser.add_argument("--million", type=int, default=1_000_000, help="samples of the streamed run's largest dataset")
    parser.add_argument("--run-budget", type=int, default=24, help="concepts per student of the streamed runs")
    parser.add_argument("--only-streamed-runs", action="store_true",
                        help="measure only the streamed runs at --large and --million samples (about half an hour)")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--shared-database", action="store_true",
                        help="use FiftyOne's configured database instead of a server of the benchmark's own")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS threads per measurement (1: on a shared 2-core machine more threads spin "
                             "against other processes and the figures stop meaning anything; 0: torch's default)")
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], json.loads(args.child[1]))
    THREADS[0] = args.threads

    import uuid

    stamp = uuid.uuid4().hex[:8]
    sizes = (args.large, args.million) if args.only_streamed_runs else (args.small, args.large, args.million)
    names = {n: f"inficond-scale-{stamp}-{n}" for n in sizes}
    figures = {}
    with tempfile.TemporaryDirectory(prefix="inficond-scale-") as scratch:
        server = None if args.shared_database else own_database(os.path.join(scratch, "db"))
        try:
            if not args.only_streamed_runs:
                figures.update(in_memory_and_writes(args, names, scratch))
            figures.update(streamed_runs(args, names, scratch))
        finally:
            if server is None:
                delete_datasets([*names.values(), *(name + "-images" for name in names.values())])
            else:
                server.terminate()  # the benchmark's own server, and its data with the scratch folder
                server.wait()
    figures["threads"] = args.threads
    print(" ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v:.3f}" for k, v in figures.items()))


BUILT = set()  # the datasets built so far


def build(name, n, classes):
    """Builds dataset ``name`` of ``n`` synthetic samples, once."""
    if name not in BUILT:
        seconds, _ = timed(lambda: spawn("build", name=name, n=n, classes=classes))
        BUILT.add(name)
        print(f"{n} samples: built in {seconds:.0f} s", flush=True)


def in_memory_and_writes(args, names, scratch):
    """The in-memory path at --small and --large, writes at both, the streamed fit at --large and
    --streamed-large."""
    app, streamed, written = {}, {}, {}
    for n in (args.small, args.large):
        build(names[n], n, args.classes)
        app[n] = spawn("app", name=names[n])
        print(f"{n} samples, in memory: " + " ".join(f"{k}={v:.3f}" for k, v in app[n].items()), flush=True)
    pool = os.path.join(scratch, "images")
    spawn("images", directory=pool, pool=256)
    for n in (args.small, args.large):
        name = names[n] + "-images"
        spawn("image_dataset", name=name, n=n, directory=pool)
        written[n] = {"extract": spawn("extract", name=name),
                      "teacher": spawn("teacher", name=name, n=n, classes=args.classes)}
        print(f"{n} samples, extraction and teacher import: {written[n]}", flush=True)
    directory = os.path.join(scratch, f"cache-{args.large}")
    cache = spawn("cache", name=names[args.large], directory=directory)
    print(f"{args.large} samples, cursor -> float16 cache: {cache}", flush=True)
    streamed[args.large] = spawn("streamed", directory=directory, epochs=args.streamed_epochs)
    print(f"{args.large} samples, streamed: {streamed[args.large]}", flush=True)
    directory = os.path.join(scratch, f"cache-{args.streamed_large}")
    spawn("synthetic_cache", directory=directory, n=args.streamed_large, classes=args.classes)
    streamed[args.streamed_large] = spawn("streamed", directory=directory, epochs=args.streamed_epochs)
    print(f"{args.streamed_large} samples, streamed: {streamed[args.streamed_large]}", flush=True)

    small, large = app[args.small], app[args.large]
    figures = {"rows": args.large, "peak_rss_mb": large["peak_mb"], "peak_rss_mb_10k": small["peak_mb"]}
    for key in ("train_s", "load_s", "tune_s", "metrics_s", "whatif_s", "top_concepts_s", "first_paint_s"):
        figures[key] = large[key]
        figures[key[:-2] + "_growth"] = large[key] / small[key]
    figures.update(
        cache_s_100k=cache["cache_s"], cache_peak_mb_100k=cache["peak_mb"],
        streamed_peak_mb_100k=streamed[args.large]["peak_mb"],
        streamed_peak_mb_300k=streamed[args.streamed_large]["peak_mb"],
        streamed_epoch_s_100k=streamed[args.large]["train_s"] / args.streamed_epochs,
        streamed_epoch_s_300k=streamed[args.streamed_large]["train_s"] / args.streamed_epochs,
        streamed_agreement_s_300k=streamed[args.streamed_large]["agreement_s"],
        streamed_agreement_ap_s_300k=streamed[args.streamed_large]["agreement_ap_s"],
    )
    for step, timing in (("extract", "extract_s"), ("teacher", "teacher_s")):
        figures[f"{step}_peak_mb_10k"] = written[args.small][step]["peak_mb"]
        figures[f"{step}_peak_mb_100k"] = written[args.large][step]["peak_mb"]
        figures[timing] = written[args.large][step][timing]
        figures[f"{step}_growth"] = written[args.large][step][timing] / written[args.small][step][timing]
    figures["extract_images_s"] = written[args.large]["extract"]["images_s"]
    return figures


def streamed_runs(args, names, scratch):
    """A streamed run at --large and --million samples: trained (its own process), then first
    painted and tuned once (another); the peak is the larger of the two processes'."""
    measured = {}
    for n in (args.large, args.million):
        build(names[n], n, args.classes)
        run = spawn("streamed_run", name=names[n], cache_dir=os.path.join(scratch, "runs"),
                    epochs=args.streamed_epochs, budget=args.run_budget)
        use = spawn("streamed_use", name=names[n], epochs=args.streamed_epochs)
        measured[n] = {**run, **use, "peak_mb": max(run["peak_mb"], use["peak_mb"])}
        print(f"{n} samples, streamed run: {measured[n]} (train peak {run['peak_mb']:.0f} MB)", flush=True)
    large, million = measured[args.large], measured[args.million]
    return {
        "rows_1m": args.million, "peak_rss_mb_1m": million["peak_mb"], "peak_rss_mb_100k_streamed": large["peak_mb"],
        "train_s_1m": million["train_s"], "tune_s_1m": million["tune_s"], "first_paint_s_1m": million["first_paint_s"],
        "train_growth_1m": million["train_s"] / large["train_s"], "tune_growth_1m": million["tune_s"] / large["tune_s"],
        "first_paint_growth_1m": million["first_paint_s"] / large["first_paint_s"],
    }


if __name__ == "__main__":
    main()
