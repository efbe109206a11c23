"""The world's teacher: a small CNN trained on the world's class labels, used as a FiftyOne model.

It sees only pixels and class labels, so it learns whatever predicts the labels in its training
split, including an injected spurious correlation (e.g. airplanes under clouds): exactly the kind of
teacher whose knowledge distillation should make visible and tuning should correct.
"""

import fiftyone as fo
import fiftyone.utils.torch as fout
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from fiftyone_inficond.students.training import TensorBatches, quiet_lightning
from fiftyone_inficond.world.scenes import generate_scenes
from fiftyone_inficond.world.vocabulary import CLASSES

CLASS_NAMES = list(CLASSES)
N_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 64
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
# With half as many, the thin-lined bicycle stays mostly under 0.5 and the teacher's decisions miss it
TRAINING_SCENES = 3000
BIAS_CONTEXT_RATE, BIAS_HIDDEN_RATE = 0.95, 0.5  # a biased teacher's training scenes (teacher_scenes)


class WorldCNN(nn.Module):
    """Four strided conv blocks, global pooling, one logit per class."""

    def __init__(self, n_classes=N_CLASSES, width=32):
        super().__init__()
        layers, channels = [], 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, n_classes)

    def forward(self, images):
        return self.head(self.features(images))


class TeacherModule(pl.LightningModule):
    """The CNN, its multi-label BCE loss and its optimizer."""

    def __init__(self, model, lr=3e-3):
        super().__init__()
        self.model = model
        self.lr = lr

    def training_step(self, batch, batch_index):
        images, labels = batch
        return F.binary_cross_entropy_with_logits(self.model(images), labels)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class MultiLabelOutputProcessor(fout.OutputProcessor):
    """Sigmoid scores of every class as ``Classifications`` (a multi-label classifier)."""

    def __init__(self, classes=None, **kwargs):
        super().__init__(classes=classes)
        self.classes = classes

    def __call__(self, output, frame_size, confidence_thresh=None, **kwargs):
        probabilities = torch.sigmoid(output).detach().cpu().numpy()
        return [
            fo.Classifications(
                classifications=[fo.Classification(label=c, confidence=float(p)) for c, p in zip(self.classes, row)]
            )
            for row in probabilities
        ]


def _tensors(scenes):
    images = np.stack([np.asarray(s.image.resize((IMAGE_SIZE, IMAGE_SIZE))) for s in scenes]) / 255.0
    images = (images - MEAN) / STD
    labels = np.array([[c in s.classes for c in CLASS_NAMES] for s in scenes], dtype=np.float32)
    return torch.as_tensor(images, dtype=torch.float32).permute(0, 3, 1, 2), torch.as_tensor(labels)


def teacher_scenes(n, seed, bias=None):
    """A world teacher's training scenes: unbiased, or with ``bias=(class, thing)``: the class
    nearly always with the context thing (cloud, sun or rock) and often hidden behind it yet
    labelled, so the thing is the cue the labels reward. A teacher trained on them errs where
    the correlation is absent."""
    if bias is None:
        return generate_scenes(n, seed=seed)
    cls, thing = bias
    return generate_scenes(n, seed=seed, context_with={cls: {thing: BIAS_CONTEXT_RATE}}, hidden={cls: BIAS_HIDDEN_RATE})


def train_world_teacher(scenes, epochs=8, batch_size=64, seed=0):
    """Trains a :class:`WorldCNN` on scenes' class labels; returns it in eval mode."""
    torch.manual_seed(seed)
    model = WorldCNN()
    batches = TensorBatches(*_tensors(scenes), batch_size=batch_size, seed=seed)
    with quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
        )
        trainer.fit(TeacherModule(model), DataLoader(batches, batch_size=None))
    return model.eval()


def as_fiftyone_model(model):
    """Wraps a trained :class:`WorldCNN` as a FiftyOne model (``apply_model`` accepts it)."""
    config = fout.TorchImageModelConfig(
        dict(
            entrypoint_fcn=lambda: model,
            output_processor_cls=MultiLabelOutputProcessor,
            classes=CLASS_NAMES,
            image_size=[IMAGE_SIZE, IMAGE_SIZE],
            image_mean=MEAN,
            image_std=STD,
        )
    )
    return fout.TorchImageModel(config)
