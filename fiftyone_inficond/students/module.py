"""The students as one Lightning module: k linear concept students sharing one ``nn.Linear``.

A student that weighs every one of 1,153 concepts explains nothing: its ten largest weights
hold a sliver of what decides, and an L1 subgradient under Adam never reaches an exact zero.
So a student may be given a *budget*, the number of concepts it may use (the "number of
effective concepts" of the concept-bottleneck literature). Its weights are pruned to the
budget by magnitude, gradually over the first :data:`PRUNE_FRACTION` of the optimizer steps
(from as many concepts as the start uses down to the budget, on a cubic schedule: Zhu & Gupta,
"To prune, or not to prune", 2017), and held there for the rest: after every step only the
budget's largest weights stay, the others are exactly zero, and a pruned concept whose gradient
grows may come back in place of a weaker one (iterative hard thresholding). Concepts whose
bounds exclude zero (a 👍 or 👎 that needs them) are always kept and count towards the budget.
"""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

PRUNE_FRACTION = 0.6  # of the optimizer steps over which a student is pruned down to its budget


class ConceptStudents(pl.LightningModule):
    """``k`` linear students, one per class, trained on the teacher's probabilities.

    Loss: ``BCEWithLogits(logits, teacher_probabilities) + l1 * ||W||_1 / k``, i.e. each
    student's own BCE plus ``l1`` times its own weights' L1 norm, averaged over students
    (the students are independent: each row of ``W`` sees only its own class's loss).

    After every optimizer step the weights are projected onto ``[lower, upper]``, the
    bounds that tuning instructions set (``-inf``/``+inf`` where there are none), and, where
    ``budgets`` (``(k,)`` ints) are given, onto each student's budget of nonzero weights.
    """

    def __init__(self, weight, bias, lower, upper, l1=1e-4, lr=1e-2, budgets=None, total_steps=0):
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)
        self.register_buffer("lower", lower.clone())
        self.register_buffer("upper", upper.clone())
        self.register_buffer("forced", (lower > 0) | (upper < 0))
        self.budgets = None if budgets is None else torch.as_tensor(budgets, dtype=torch.float32)
        self.start_keep = (weight != 0).sum(dim=1).float()
        self.total_steps = total_steps  # the optimizer steps of the fit: pruning is scheduled over them
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
        """Clamps every weight into its bounds and keeps each student's allowed number of them."""
        weight = torch.clamp(self.linear.weight, self.lower, self.upper)
        if self.budgets is not None:
            weight = weight * keep_largest(weight, self.forced, self.allowed())
        self.linear.weight.copy_(weight)

    def allowed(self):
        """``(k,)`` how many concepts each student may use at this step: from as many as it
        started with down to its budget over the pruning steps, the budget after them."""
        step = self.trainer.global_step if self._trainer is not None else 0
        done = min(1.0, step / (PRUNE_FRACTION * self.total_steps)) if self.total_steps else 1.0
        start = torch.maximum(self.start_keep, self.budgets)
        return torch.round(self.budgets + (start - self.budgets) * (1 - done) ** 3)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def keep_largest(weight, forced, allowed):
    """``(k, n)`` float mask of the ``allowed[j]`` largest ``|weight[j]|`` of each row, ``forced``
    entries first (ties at the cut may keep a few more)."""
    score = torch.where(forced, torch.inf, weight.abs())
    allowed = allowed.long().clamp(1, weight.shape[1])
    # only as many as any row keeps (after the pruning steps, a budget's), not a sort of every concept
    ranked = torch.topk(score, int(allowed.max()), dim=1).values
    cut = ranked.gather(1, (allowed - 1)[:, None])
    return ((score >= cut) & (score > 0)).to(weight.dtype)
