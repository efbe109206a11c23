"""Grouping patches into segments: SLIC-style clustering on the patch grid, batched.

Each patch is assigned to the nearest of ``n_segments`` centres seeded on a regular grid,
by cosine distance of embeddings plus a weighted squared distance on the grid; centres are
re-estimated a few times. Segments thus group neighbouring patches that see the same thing,
the whole batch at once, with no per-image Python loop.
"""

import math

import torch
import torch.nn.functional as F


def _grid_coords(rows, cols, device):
    """Patch centres, ``(rows * cols, 2)``, scaled so the longer side spans [0, 1]."""
    ys, xs = torch.meshgrid(
        torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij"
    )
    coords = torch.stack([ys.flatten(), xs.flatten()], dim=-1).float()
    return coords / max(rows - 1, cols - 1, 1)


def _seed_indices(rows, cols, n_segments, device):
    """Patches on a regular grid of about ``n_segments`` points, used as the first centres."""
    per_side = max(1, round(math.sqrt(n_segments)))
    seed_rows = torch.linspace(0, rows - 1, min(per_side, rows), device=device).round().long()
    seed_cols = torch.linspace(0, cols - 1, min(per_side, cols), device=device).round().long()
    return (seed_rows[:, None] * cols + seed_cols[None, :]).flatten()


def seed_count(grid, n_segments):
    """How many segment ids :func:`segment_patches` can assign on ``grid``."""
    return len(_seed_indices(*grid, n_segments, "cpu"))


def segment_patches(embeddings, grid, n_segments=16, spatial_weight=1.0, iterations=5):
    """Assigns every patch of every image to a segment.

    Args:
        embeddings: ``(batch, rows * cols, dim)`` patch embeddings
        grid: ``(rows, cols)``
        n_segments: about how many segments per image (seeded on a square grid)
        spatial_weight: weight of the squared grid distance against cosine distance
        iterations: centre updates

    Returns:
        a ``(batch, rows * cols)`` long tensor of segment ids in ``[0, n_seeds)``; some ids
        may be unused by an image
    """
    rows, cols = grid
    device = embeddings.device
    features = F.normalize(embeddings.float(), dim=-1)
    coords = _grid_coords(rows, cols, device)
    seeds = _seed_indices(rows, cols, n_segments, device)
    centre_features = features[:, seeds]
    centre_coords = coords[seeds].expand(features.shape[0], -1, -1)
    for _ in range(iterations):
        assignment = _assign(features, coords, centre_features, centre_coords, spatial_weight)
        centre_features, centre_coords = _update_centres(
            features, coords, assignment, centre_features, centre_coords
        )
    return _assign(features, coords, centre_features, centre_coords, spatial_weight)


def _assign(features, coords, centre_features, centre_coords, spatial_weight):
    feature_distance = 1 - features @ F.normalize(centre_features, dim=-1).transpose(1, 2)
    grid_distance = torch.cdist(coords.expand(features.shape[0], -1, -1), centre_coords) ** 2
    return (feature_distance + spatial_weight * grid_distance).argmin(dim=-1)


def _update_centres(features, coords, assignment, centre_features, centre_coords):
    members = F.one_hot(assignment, centre_features.shape[1]).float()  # (batch, patches, k)
    counts = members.sum(dim=1)[..., None]
    has_members = counts > 0
    safe_counts = counts.clamp(min=1)
    new_features = members.transpose(1, 2) @ features / safe_counts
    new_coords = members.transpose(1, 2) @ coords / safe_counts
    # A centre that lost all its patches stays where it was.
    return (
        torch.where(has_members, new_features, centre_features),
        torch.where(has_members, new_coords, centre_coords),
    )


def segment_embeddings(embeddings, assignment, n_ids):
    """Normalized mean embedding per segment and which segments are used.

    Returns:
        ``(batch, n_ids, dim)`` unit embeddings (zeros for unused ids) and a
        ``(batch, n_ids)`` bool mask of used ids
    """
    members = F.one_hot(assignment, n_ids).to(embeddings.dtype)
    sums = members.transpose(1, 2) @ embeddings
    used = members.sum(dim=1) > 0
    return F.normalize(sums, dim=-1), used
