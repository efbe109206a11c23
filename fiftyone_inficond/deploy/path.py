"""The whole student path as one torch program: image → concept vectors → class probabilities.

It holds the CLIP image tower, the text embeddings of the concepts the students use, the
segmenting settings and the linear students as parameters and buffers of plain torch modules,
so that :func:`script` can turn it into a TorchScript program that ``torch.jit.load`` runs with
nothing but torch: no open_clip, FiftyOne, MongoDB or this package. TorchScript rather than
``torch.export``: its loader builds only TorchScript types, while ``torch.export.load`` unpickles
arbitrary objects, which an export read from elsewhere must never do.
"""

import io
import warnings

import torch
from torch import nn

from fiftyone_inficond.concepts import concept_vectors, image_segments
from fiftyone_inficond.dense import patch_grid
from fiftyone_inficond.segments import seed_count


class StudentPath(nn.Module):
    """Preprocessed images in; the students' probabilities and the concept vectors out.

    Args:
        clip_model: an open_clip model with a ViT image tower (only the tower is kept)
        concept_embeddings: ``(c, embed_dim)`` unit text embeddings of the concepts kept
        n_segments, spatial_weight: the concept run's segment settings
        mean, std: ``(c,)`` the run's standardization of the concepts kept
        weight, bias: ``(k, c)`` and ``(k,)`` the students' weights over the concepts kept
    """

    def __init__(self, clip_model, concept_embeddings, n_segments, spatial_weight, mean, std, weight, bias):
        super().__init__()
        self.visual = clip_model.visual
        self.grid = patch_grid(clip_model)
        self.n_segments = n_segments
        self.spatial_weight = spatial_weight
        self.n_ids = seed_count(self.grid, n_segments)
        for name, value in dict(concept_embeddings=concept_embeddings, mean=mean, std=std, weight=weight,
                                bias=bias).items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32).clone())

    def forward(self, images):
        """``(batch, 3, height, width)`` preprocessed images → ``(batch, k)`` class probabilities
        and ``(batch, c)`` concept vectors."""
        segments, used, _ = image_segments(self.visual, images, self.grid, self.n_segments, self.spatial_weight,
                                           self.n_ids)
        vectors = concept_vectors(segments @ self.concept_embeddings.T, used)
        return torch.sigmoid(((vectors - self.mean) / self.std) @ self.weight.T + self.bias), vectors


@torch.no_grad()
def script(path, image_size):
    """A TorchScript program of ``path``, traced for any batch size of ``image_size`` images."""
    with warnings.catch_warnings():  # torch marks TorchScript deprecated; its loader is the safe one
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.trace(path.eval().requires_grad_(False), torch.rand(2, 3, *image_size), check_trace=False)


def save_program(program, file):
    """Writes ``program`` to ``file`` through Python: TorchScript's own writer aborts the whole process
    (an App server with it) when the disk fills up; a Python write raises ``OSError`` instead."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(program, buffer)
    with open(file, "wb") as out:
        out.write(buffer.getbuffer())


def load_program(file):
    """The program of ``file`` on the CPU (``torch.jit.load``: no arbitrary unpickling)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(file, map_location="cpu")
