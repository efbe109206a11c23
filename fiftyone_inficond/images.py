"""Batches of preprocessed images from file paths; unreadable files are reported, not fatal.

No read waits forever: opening a FIFO blocks until something writes to it, so a path that is not
a regular file (a FIFO, a device, a folder) is refused before it is opened, and a read that takes
over ``READ_TIMEOUT_S`` (a stalled network mount) is given up, its thread left behind as a daemon
that never holds up the process's exit. Either is reported like any other unreadable file.

16-bit greyscale images (PIL modes ``I;16*``, and ``I``) are scaled to 8 bits by their range:
PIL's own conversion to RGB clips them at 255, which shows nearly every pixel white.
"""

import os
import stat
import threading

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

READ_TIMEOUT_S = 60.0
_INTEGER_RANGES = (255, 65535)  # 8 and 16 bits: a mode "I" image takes the first holding its values


class _ImageFiles(Dataset):
    def __init__(self, paths, preprocess):
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        try:
            return index, self.preprocess(read_image(self.paths[index])), None
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
    image = read_image(path)
    width, height = image.size
    x, y, w, h = box
    region = image.crop((round(x * width), round(y * height), round((x + w) * width), round((y + h) * height)))
    region.thumbnail((size, size))
    return region


def read_image(path):
    """The image file at ``path`` as an 8-bit RGB PIL image, upright as its EXIF says; raises
    ``TimeoutError`` when reading it takes over ``READ_TIMEOUT_S``."""
    outcome = {}
    reader = threading.Thread(target=_read_into, args=(path, outcome), daemon=True, name="inficond-image-read")
    reader.start()
    reader.join(READ_TIMEOUT_S)
    if reader.is_alive():
        raise TimeoutError(f"Reading '{path}' took over {READ_TIMEOUT_S:g} s (a stalled network mount?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["image"]


def _read_into(path, outcome):
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise OSError(f"'{path}' is not a regular file (a FIFO, a device or a folder), so it is not read")
        with Image.open(path) as image:
            outcome["image"] = _rgb(ImageOps.exif_transpose(image))
    except Exception as error:  # handed to the caller, whatever the cause
        outcome["error"] = error


def _rgb(image):
    if image.mode.startswith("I"):  # integer greyscale: scaled by its range, not clipped at 255
        pixels = np.clip(np.asarray(image, dtype=np.float32), 0, None)
        peak = float(pixels.max(initial=0))
        top = 65535 if image.mode.startswith("I;16") else next((r for r in _INTEGER_RANGES if peak <= r), peak)
        image = Image.fromarray(np.round(pixels * (255 / top)).astype(np.uint8))
    return image.convert("RGB")
