"""Concept extraction throughput against plain ``encode_image``, same images and model, one run.

Two ratios: the model work alone on the same preprocessed batches (``extract_vs_encode``), and
the whole ``compute_concepts`` over a FiftyOne dataset (decode, extract, write to MongoDB)
against decoding plus ``encode_image``: ``pipeline_vs_encode`` with the corpus's text
embeddings already in the shared cache (every run after the first for a model), and
``pipeline_vs_encode_cold`` paying their one-off encoding.
"""

import argparse
import glob
import os
import uuid

import fiftyone as fo
import torch
from timing import timed

from fiftyone_inficond import fiftyone_api
from fiftyone_inficond.clip import encode_concepts, load_clip
from fiftyone_inficond.concepts import ConceptExtractor
from fiftyone_inficond.corpus import load_corpus
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.images import image_batches
from fiftyone_inficond.text_cache import COLLECTION, weights_id

COCO128 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "assets", "coco128-train")


@torch.no_grad()
def encode_all(model, batches):
    for images in batches:
        model.encode_image(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())

    paths = sorted(glob.glob(os.path.join(COCO128, "images", "*.jpg")))[: args.images]
    clip = load_clip(args.model, args.pretrained, device="cpu")
    corpus = load_corpus()
    text_s, _ = timed(lambda: encode_concepts(clip, corpus))
    extractor = ConceptExtractor(clip.model, encode_concepts(clip, corpus))
    batches = [images for _, images, _ in image_batches(paths, clip.preprocess, args.batch_size)]

    encode_all(clip.model, batches[:1])  # warm-up
    extractor(batches[0])
    encode_s, _ = timed(lambda: encode_all(clip.model, batches))
    extract_s, _ = timed(lambda: [extractor(images) for images in batches])

    def load_and_encode():
        encode_all(clip.model, (x for _, x, _ in image_batches(paths, clip.preprocess, args.batch_size)))

    def pipeline():
        dataset = fo.Dataset(f"inficond-bench-{uuid.uuid4().hex[:8]}")
        try:
            dataset.add_samples([fo.Sample(filepath=p) for p in paths])
            return timed(lambda: compute_concepts(dataset, clip, batch_size=args.batch_size, progress=False))[0]
        finally:
            dataset.delete()

    load_encode_s, _ = timed(load_and_encode)
    cache = fiftyone_api.database()[COLLECTION]
    cache.delete_many({"model": f"{clip.name}|{weights_id(clip)}"})  # cold: this model's texts forgotten
    pipeline_cold_s = pipeline()
    pipeline_s = pipeline()  # warm: the texts come from the cache

    n = len(paths)
    print(f"model={args.model} images={n} batch={args.batch_size} concepts={len(corpus)} "
          f"threads={torch.get_num_threads()}")
    print(f"encode_image: {n / encode_s:.2f} img/s   extract: {n / extract_s:.2f} img/s")
    print(f"decode+encode_image: {n / load_encode_s:.2f} img/s   compute_concepts (decode, extract, write): "
          f"{n / pipeline_s:.2f} img/s, {n / pipeline_cold_s:.2f} img/s with a cold text cache")
    print(f"corpus text encoding: {text_s:.1f} s for {len(corpus)} prompts (once per model, then cached)")
    print(
        f"extract_vs_encode={encode_s / extract_s:.2f} "
        f"pipeline_vs_encode={load_encode_s / pipeline_s:.2f} "
        f"pipeline_vs_encode_cold={load_encode_s / pipeline_cold_s:.2f} "
        f"goal=0.85"
    )


if __name__ == "__main__":
    main()
