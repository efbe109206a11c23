"""Writing generated scenes to disk as a FiftyOne dataset with their full ground truth."""

import os

import fiftyone as fo

from fiftyone_inficond.world.scenes import generate_scenes
from fiftyone_inficond.world.vocabulary import CLASSES, CONCEPTS

MASK_TARGETS = {i + 1: name for i, name in enumerate(CONCEPTS)}
MASK_FIELDS = ("world_regions", "world_colours", "world_textures")


def load_world(name, root, n=300, seed=0, split="train", cloud_with=None, overwrite=False):
    """Generates ``n`` scenes into ``root`` and loads them as a persistent FiftyOne dataset.

    Each sample has ``ground_truth`` (``Classifications`` of its classes), ``world_concepts``
    (the concept names present), ``world_regions`` and ``world_colours`` (``Segmentation``
    masks whose values name corpus concepts through the dataset's mask targets), a
    ``caption`` and the tag ``split``.
    """
    os.makedirs(root, exist_ok=True)
    dataset = fo.Dataset(name, overwrite=overwrite, persistent=True)
    samples = []
    for i, scene in enumerate(generate_scenes(n, seed=seed, cloud_with=cloud_with)):
        path = os.path.join(root, f"{split}-{seed}-{i:05d}.png")
        scene.image.save(path)
        samples.append(
            fo.Sample(
                filepath=path,
                tags=[split],
                ground_truth=fo.Classifications(classifications=[fo.Classification(label=c) for c in scene.classes]),
                world_concepts=scene.concepts,
                world_regions=fo.Segmentation(mask=scene.region_mask),
                world_colours=fo.Segmentation(mask=scene.colour_mask),
                world_textures=fo.Segmentation(mask=scene.texture_mask),
                caption=scene.caption,
            )
        )
    dataset.add_samples(samples)
    dataset.mask_targets = {name: MASK_TARGETS for name in MASK_FIELDS}
    dataset.default_classes = list(CLASSES)
    dataset.save()
    return dataset


def load_world_splits(name, root, n_train, n_heldout, seed=0, cloud_with=None):
    """One dataset with a ``train`` split (with the ``cloud_with`` correlation, if any) and a
    ``heldout`` split from another seed without it: the setting distillation is judged in."""
    dataset = load_world(name, root, n=n_train, seed=seed, split="train", cloud_with=cloud_with)
    heldout = load_world(f"{name}-heldout", root, n=n_heldout, seed=seed + 1, split="heldout")
    dataset.add_collection(heldout)
    heldout.delete()
    return dataset
