"""Batches of preprocessed images from file paths; unreadable files are reported, not fatal."""

import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset


class _ImageFiles(Dataset):
    def __init__(self, paths, preprocess):
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        try:
            with Image.open(self.paths[index]) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
            return index, self.preprocess(image), None
        except Exception as e:  # any unreadable file is skipped and reported, whatever the cause
            return index, None, f"{type(e).__name__}: {e}"


def _collate(items):
    loaded = [(i, x) for i, x, error in items if error is None]
    failed = {i: error for i, _, error in items if error is not None}
    indices = [i for i, _ in loaded]
    images = torch.stack([x for _, x in loaded]) if loaded else None
    return indices, images, failed


def image_batches(paths, preprocess, batch_size=32, num_workers=0):
    """Yields ``(indices, images, failures)`` per batch, in path order.

    ``indices`` are the positions in ``paths`` of the stacked ``images`` (``None`` when the
    whole batch failed); ``failures`` maps positions of unreadable files to the error.
    """
    loader = DataLoader(
        _ImageFiles(list(paths), preprocess),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    yield from loader


def crop(path, box, size=96):
    """The region ``box`` (``[x, y, width, height]`` relative to the image, FiftyOne's
    convention) of an image file, scaled to fit ``size`` x ``size``: an RGB PIL image."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    x, y, w, h = box
    region = image.crop((round(x * width), round(y * height), round((x + w) * width), round((y + h) * height)))
    region.thumbnail((size, size))
    return region
