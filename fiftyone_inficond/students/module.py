"""The students as one Lightning module: k linear concept students sharing one ``nn.Linear``."""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


class ConceptStudents(pl.LightningModule):
    """``k`` linear students, one per class, trained on the teacher's probabilities.

    Loss: ``BCEWithLogits(logits, teacher_probabilities) + l1 * ||W||_1 / k``, i.e. each
    student's own BCE plus ``l1`` times its own weights' L1 norm, averaged over students
    (the students are independent: each row of ``W`` sees only its own class's loss).

    After every optimizer step the weights are projected onto ``[lower, upper]``, the
    bounds that tuning instructions set (``-inf``/``+inf`` where there are none).
    """

    def __init__(self, weight, bias, lower, upper, l1=1e-4, lr=1e-2):
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)
        self.register_buffer("lower", lower.clone())
        self.register_buffer("upper", upper.clone())
        self.l1 = l1
        self.lr = lr

    def forward(self, concepts):
        return self.linear(concepts)

    def loss(self, concepts, teacher):
        bce = F.binary_cross_entropy_with_logits(self(concepts), teacher)
        return bce + self.l1 * self.linear.weight.abs().sum() / self.linear.out_features

    def training_step(self, batch, batch_index):
        return self.loss(*batch)

    def on_train_batch_end(self, outputs, batch, batch_index):
        self.project()

    @torch.no_grad()
    def project(self):
        """Clamps every weight into its bounds."""
        self.linear.weight.copy_(torch.clamp(self.linear.weight, self.lower, self.upper))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)
