"""Where a concept is, on the grid: one reused heatmap field, on the pixels the world's masks say."""

import fiftyone as fo
import numpy as np
import pytest
from conftest import unique_name

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.corpus import packaged_corpus
from fiftyone_inficond.errors import UnknownName
from fiftyone_inficond.extraction import compute_concepts
from fiftyone_inficond.overlay import show_concept_overlay
from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL, patch_fractions
from fiftyone_inficond.world.dataset import load_world
from fiftyone_inficond.world.vocabulary import BACKGROUNDS, COLOURS, CONCEPTS, GROUND_THINGS, SKY_THINGS, TEXTURES

F = fo.ViewField


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    dataset = load_world(unique_name("inficond-overlay"), str(tmp_path_factory.mktemp("world")), n=24, seed=3)
    compute_concepts(dataset, load_clip(WORLD_MODEL, WORLD_CHECKPOINT, device="cpu"), corpus=packaged_corpus("world"))
    yield dataset
    dataset.delete()


def _shares(sample, concept, grid):
    """Per patch of ``grid``: the share of its pixels where the world's masks put ``concept``."""
    value = CONCEPTS.index(concept) + 1
    masks = (sample.world_regions.mask, sample.world_colours.mask, sample.world_textures.mask)
    return sum(patch_fractions([(m == value).astype(np.int64)], grid, 2)[:, 1] for m in masks).reshape(grid)


def _on_region(dataset, concepts, least_share):
    """Over every image holding one of ``concepts``: the share of its heatmap's top patches
    (its best segment) with at least ``least_share`` of their pixels on the concept."""
    shares = []
    for concept in concepts:
        holding = dataset.match(F("world_concepts").contains(concept))
        show_concept_overlay(holding, concept)
        for sample in holding:
            heatmap = sample.concepts_overlay
            assert heatmap.concept == concept
            top = heatmap.map >= heatmap.map.max() - 1e-6
            shares.extend(_shares(sample, concept, heatmap.map.shape)[top] >= least_share)
    return np.mean(shares)


def test_a_concepts_heatmap_lies_where_the_worlds_masks_put_it(world):
    # Context (backgrounds, clouds, sun, rocks): the top patches lie mostly on the concept.
    assert _on_region(world, [*BACKGROUNDS, *SKY_THINGS, *GROUND_THINGS], least_share=0.5) >= 0.7
    # Colours and textures cover parts smaller than the world CLIP's 8 x 8 patches: touched.
    assert _on_region(world, [*COLOURS, *TEXTURES], least_share=0.01) >= 0.7


def test_one_field_holds_the_one_concept_shown_last(world):
    first = show_concept_overlay(world.limit(10), "sky")
    assert first["field"] == "concepts_overlay" and first["samples"] == 10
    again = show_concept_overlay(world.skip(5).limit(10), "cloud")
    assert again["samples"] == 10 and again["cleared"] == 5 and not again["new_field"]
    world.reload()
    assert [n for n in world.get_field_schema() if n.startswith("concepts_overlay")] == ["concepts_overlay"]
    shown = world.exists("concepts_overlay")
    assert sorted(shown.values("id")) == sorted(world.skip(5).limit(10).values("id"))
    assert set(shown.values("concepts_overlay.concept")) == {"cloud"}
    assert all(m.min() >= 0 and m.max() <= 1 for m in shown.values("concepts_overlay.map"))


def test_a_heatmap_colours_only_the_shown_images_most_similar_patches_and_says_from_what_similarity(world):
    shown = show_concept_overlay(world.limit(12), "sky")
    low, high = shown["range"]
    heatmaps = world.limit(12).values("concepts_overlay")
    values = np.concatenate([h.map.ravel() for h in heatmaps])
    coloured = values[values > 0]  # 0 is clear in the App
    assert 0 < low < high <= 1 and all(list(h.range) == [low, high] for h in heatmaps)
    assert coloured.min() >= low and coloured.max() == pytest.approx(high)
    assert 0 < len(coloured) <= 0.26 * len(values)  # the top quarter of the patches, not a wash over every image


def test_an_unknown_concept_is_refused_and_nothing_written(world):
    before = world.exists("concepts_overlay").values("id") if world.has_sample_field("concepts_overlay") else []
    with pytest.raises(UnknownName, match="pick one of its concepts"):
        show_concept_overlay(world, "no such thing")
    after = world.exists("concepts_overlay").values("id") if world.has_sample_field("concepts_overlay") else []
    assert before == after
