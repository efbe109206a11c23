"""A student run: its students' predictions, and its tuning and reverting, each saved as a
revision; its evaluation (:mod:`.evaluation`), its concepts' rankings, presence and what-ifs
(:mod:`.analyses`) and its history and notes (:mod:`.provenance`) are parts of it. Runs are
trained, loaded and listed by :mod:`fiftyone_inficond.students.registry`; tune instructions are
read by :mod:`.instructions`.

Every write validates all of its inputs first and then writes in an order where a crash at
any point leaves the old state or the new one (see :mod:`fiftyone_inficond.students.store`).
"""


import numpy as np
from scipy.special import expit

from fiftyone_inficond import fiftyone_api, validation
from fiftyone_inficond.errors import InvalidRequest, UnknownName
from fiftyone_inficond.runs import CONCEPTS_METHOD, run_config
from fiftyone_inficond.students import store
from fiftyone_inficond.students.analyses import ConceptAnalyses
from fiftyone_inficond.students.budget import usage
from fiftyone_inficond.students.cache import CachedInputs, InputsCache
from fiftyone_inficond.students.constraints import Constraints
from fiftyone_inficond.students.data import check_training_split
from fiftyone_inficond.students.erasure import fit_tuned
from fiftyone_inficond.students.evaluation import Evaluation, split_record, stored_metrics
from fiftyone_inficond.students.instructions import change, describe, rose, triples_of
from fiftyone_inficond.students.instructions import parse as parse_instructions
from fiftyone_inficond.students.progress import fitting_progress
from fiftyone_inficond.students.provenance import Provenance
from fiftyone_inficond.students.standardized import Destandardized, standardize
from fiftyone_inficond.students.training import (
    CHUNK_ROWS,
    MAX_EPOCHS,
    TrainingConfig,
    stage,
)
from fiftyone_inficond.students.tuning import MAX_FACTOR, apply_instructions
from fiftyone_inficond.validation import number, whole_number

DEFAULT_TUNING_EPOCHS = 3


class StudentRun(Evaluation, ConceptAnalyses, Constraints, Provenance):
    """A student run with its data in memory: metrics, rankings, what-ifs, tuning, history.

    Attributes:
        classes: class names (rows of ``weight``)
        concepts: concept names (columns of ``weight``)
        state: the current :class:`fiftyone_inficond.students.store.StudentState`
        revision: the stored revision ``state`` belongs to
    """

    def __init__(self, samples, key, config, data, concepts, samples_deleted=0, teacher_digest=None):
        self.samples = samples
        self.samples_deleted = samples_deleted  # of those it was trained on, deleted since: its figures are on the rest
        self.teacher_digest = teacher_digest or config.get("teacher_digest")  # of the teacher run it was loaded with
        self.key = key
        self.uid = config["uid"]
        self.config = config
        self.data = data
        self.classes = list(config["classes"])
        self.concepts = list(concepts)
        self.training = TrainingConfig(**config["training"])
        self.threshold = config["threshold"]
        self.synonym_groups = [[self.concepts.index(n) for n in group]
                               for group in config.get("synonyms", {}).get("groups", [])]
        # One matrix per run: the vectors are standardized where they lie (in memory, or read off
        # a disk cache standardized), and read back through the standardization where raw values
        # are asked for (presence, rankings).
        raw = data.concepts
        if isinstance(raw, InputsCache):
            self.inputs = CachedInputs(raw, *self._standardization())
        else:
            in_place = isinstance(raw, np.ndarray) and raw.dtype == np.float32 and raw.flags.writeable
            self.inputs = standardize(raw, *self._standardization(), out=raw if in_place else None)
        data.concepts = Destandardized(self.inputs, *self._standardization())
        self.state = None
        self.revision = -1
        self._metrics_cache = {}  # split -> (state, ClassMetrics)
        self._logits = (None, None)  # (state, (n, k) logits of every sample)

    # --- predictions -------------------------------------------------------------------

    @property
    def weight(self):
        return self.state.weight

    @property
    def bias(self):
        return self.state.bias

    def logits(self, rows=slice(None), columns=slice(None)):
        """``(n, k)`` student logits of the run's samples (of ``rows``; of the classes
        ``columns``): every sample's computed once per state, in one pass over the inputs (which
        may lie on disk), then read."""
        state, logits = self._logits
        if state is not self.state:
            logits = self._compute_logits(slice(None))
            self._logits = (self.state, logits)
        out = logits[:, columns][rows]
        return out.copy() if np.may_share_memory(out, logits) else out  # the cache is updated in place

    def _move_logits(self, previous, columns):
        """Moves the cached logits from state ``previous`` to the run's state, which differs from it
        only in the classes ``columns``: those recomputed in place (at 1M samples a copy of all is
        320 MB). Returns what moves them back (nothing is cached for another state)."""
        state, logits = self._logits
        if state is not previous or logits is None:
            return lambda: None
        old = logits[:, columns].copy()
        logits[:, columns] = self._compute_logits(columns)
        self._logits = (self.state, logits)

        def back():
            logits[:, columns] = old
            self._logits = (previous, logits)

        return back

    def revision_logits(self, revision=None):
        """``(n, k)`` logits of the run's samples under stored ``revision`` (the run's own by default)."""
        if revision is None or revision == self.revision:
            return self.logits()
        _, state = store.load_state(self.samples, self.key, self.uid, revision)
        return self._compute_logits(slice(None), state)

    def _compute_logits(self, columns, state=None):
        """``(n, len(columns))`` logits of every sample under ``state`` (the run's by default), chunk
        by chunk: no copy of the inputs."""
        state = state or self.state
        weight, bias = state.weight[columns], state.bias[columns]
        out = np.empty((len(self.ids), len(bias)), dtype=np.float32)
        for start in range(0, len(out), CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            out[part] = self.inputs[part] @ weight.T + bias
        return out

    def _class_logits(self, column):
        """``(n,)`` logits of one class's student."""
        return self.logits(columns=column)

    def probabilities(self):
        """``(n, k)`` student probabilities of the run's samples, row order of ``ids``."""
        return expit(self.logits())

    def predict(self, samples):
        """The students' probabilities for any samples with vectors of this run's concept run
        (not only its own samples): ``(ids, (n, k) float32)``, in the order of ``samples``."""
        field = self.config["concepts_field"]
        ids, vectors = fiftyone_api.values(samples.exists(field), ["id", field], arrays=(field,))
        if not ids:
            return ids, np.zeros((0, len(self.classes)), np.float32)
        width = len(self.concepts)  # its columns only: concepts added since come after them
        inputs = standardize(np.stack([v[:width] for v in vectors]).astype(np.float32), *self._standardization())
        return ids, expit(inputs @ self.weight.T + self.bias).astype(np.float32)

    def _standardization(self):
        return (np.asarray(self.config["concept_mean"], dtype=np.float32),
                np.asarray(self.config["concept_std"], dtype=np.float32))

    def _train_rows(self):
        """Indices of the training rows, ``None`` when every row trains."""
        return None if self.data.train.all() else np.flatnonzero(self.data.train)

    @property
    def ids(self):
        return self.data.ids

    def facts(self):
        """What the run is and was trained on, JSON-safe (a header, a tooltip, provenance)."""
        concept_run = run_config(self.samples, self.config["concepts_field"], CONCEPTS_METHOD) or {}
        return {
            "key": self.key,
            "revision": self.revision,
            "samples": len(self.ids),
            "samples_deleted": self.samples_deleted,
            "train_samples": int(self.data.train.sum()),
            "classes": len(self.classes),
            "concepts": len(self.concepts),
            "concepts_field": self.config["concepts_field"],
            "concept_model": concept_run.get("model"),
            # concepts of a model without weights mean nothing (runs of early versions did not record it)
            "random_concepts": "pretrained" in concept_run and not concept_run["pretrained"],
            "teacher_field": self.config["teacher_field"],
            "gt_field": self.config["gt_field"],
            "threshold": self.threshold,
            "budget": self.training.budget,
            "concepts_used": usage(self.weight).tolist() if self.state is not None else None,
            "left_out": self.left_out,
        }

    # --- tuning and history -----------------------------------------------------------

    @fiftyone_api.speaks_for_database(lambda run, *args, **kwargs: (
        f"The database stopped answering while student run '{run.key}' was tuned: once it is back, reload the "
        f"run to see whether a revision after {run.revision} was saved, and tune again if not"))
    def tune(self, up=None, down=None, factor=1.5, epochs=DEFAULT_TUNING_EPOCHS, user=None, note=None, erase=False,
             instructions=None, progress=None, budgets=None, rebalance=None):
        """Up-tunes and down-tunes concepts, retrains the tuned classes and saves the iteration.

        Args:
            up, down: ``{class name: [concept names]}``
            instructions: and/or ``[{"class", "concept", "direction": "up" | "down"}]``, as the
                App's pending list and the history's entries hold them
            factor: how strongly (> 1; see :mod:`fiftyone_inficond.students.tuning`)
            epochs: retraining epochs, starting from the adjusted weights
            user: who tunes (the OS user by default)
            note: why, in a line ("removed the cloud shortcut"), kept in the history
            erase: retrain each tuned class on concept vectors from which its 👎'd concepts (these
                and earlier ones) are erased, so that no correlate takes their place (see
                :mod:`fiftyone_inficond.students.erasure`)
            progress: a progress bar of the retraining, as FiftyOne's ``progress`` arguments
            budgets: ``{class name: n}``: let a class's student use at most ``n`` concepts from now on
                (more than it was trained to, or fewer); its class is retrained, alone or with the
                instructions, and the budget is kept with the revision (a revert takes it back)
            rebalance: retrain each class with a 👎 on training rows where the four groups its class
                and the 👎'd concepts define weigh alike, towards the mean of the teacher's scores and
                the ground truth (CBDebug's idea): for the group a shortcut hurt, e.g. cars without
                clouds (see :mod:`fiftyone_inficond.students.groups`). ``None`` (the default): when
                the run has ground truth, as it raised the held-out worst-group gain of the user
                study's biased worlds over bounds alone (docs/user-study.md); ``False``: bounds only

        Returns:
            the new history entry

        Raises:
            StaleRunError: someone saved a newer revision since this run was loaded
        """
        factor = number(factor, "the tuning factor", 1, MAX_FACTOR, low_open=True)
        epochs = whole_number(epochs, "retraining epochs", 1, MAX_EPOCHS)
        note = validation.note(note)
        erase = validation.flag(erase, "erase")
        rebalance = self.data.truth is not None if rebalance is None else validation.flag(rebalance, "rebalance")
        if rebalance and self.data.truth is None:
            raise InvalidRequest(f"Student run '{self.key}' has no ground truth to rebalance by: tune without "
                                 f"rebalance, or train it with a ground-truth field")
        new_budgets, rebudgeted = self._budget_changes(budgets)
        triples = triples_of(up, down, instructions)
        parsed = parse_instructions(self, triples) if triples or not rebudgeted else []
        check_training_split(self.data.train)  # what is left of it, after samples were deleted
        store.require_fresh(self.samples, self.key, self.uid, self.revision)  # before retraining, not only at the save
        before = self._split_metrics()
        lower, upper, start = apply_instructions(
            self.weight, self.state.lower, self.state.upper, parsed, factor
        )
        tuned_classes = sorted({item.cls for item in parsed} | set(rebudgeted))
        budgets = self._budgets() if new_budgets is None else new_budgets
        weight, bias = self.weight.copy(), self.bias.copy()
        downed = {}  # rebalanced: each class with a 👎, and its 👎'd concepts
        for item in parsed:
            if rebalance and item.direction == "down":
                downed.setdefault(item.cls, []).append(item.concept)
        together = [c for c in tuned_classes if c not in downed]  # fit as one; each rebalanced class apart
        fits = len(tuned_classes) if erase else len(downed) + bool(together)  # erased: one class at a time
        config = TrainingConfig(**{**self.config["training"], "epochs": epochs})
        retrainings = [(together, self._train_rows(), self.data.teacher[:, together])] if together else []
        retrainings += [([c], *self._rebalanced(c, downed[c])) for c in downed]
        with fitting_progress(progress), stage("retraining", epochs * fits):
            for classes, rows, targets in retrainings:
                weight[classes], bias[classes], lower[classes], upper[classes] = fit_tuned(
                    self.inputs, targets, start[classes], self.bias[classes], lower[classes], upper[classes],
                    config, rows=rows, budgets=None if budgets is None else np.asarray(budgets)[classes],
                    erase=erase,
                )
        downs = [(self.classes[item.cls], self.concepts[item.concept]) for item in parsed
                 if item.direction == "down" and item.via is None]
        groups_before = self._worst_groups_of(downs)
        budgets_before = self._budgets()
        previous = self.state
        self.state = store.StudentState(weight, bias, lower, upper,
                                        budgets=previous.budgets if new_budgets is None else new_budgets)
        move_back = self._move_logits(previous, tuned_classes)  # only the tuned classes' logits changed
        # Students are independent: only the tuned classes' metrics can have changed.
        for split, metrics in before.items():
            tuned_metrics = metrics.with_columns(tuned_classes, self._metrics(split, tuned_classes))
            self._metrics_cache[split] = (self.state, tuned_metrics)
        try:
            after = self._split_metrics()
            splits = split_record(self.classes, after, before, tuned_classes)
            return self._save(
                kind="tune",
                user=user,
                note=note,
                instructions=[describe(self, item) for item in parsed],
                factor=factor,
                epochs=epochs,
                erase=erase,
                rebalance=rebalance,
                metrics_before=splits["all"]["before"],
                metrics_after=splits["all"]["after"],
                class_metrics=splits["all"]["classes"],
                splits=splits,
                per_class_metrics=stored_metrics(after),
                change=change(self, previous, parsed),
                rose=rose(self, previous, parsed, tuned_classes),
                worst_groups=[{"class": before["class"], "concept": before["concept"], "split": before["split"],
                               "threshold": before["threshold"], "before": before["groups"], "after": after["groups"],
                               "worst_before": before["worst"], "worst_after": after["worst"]}
                              for before, after in zip(groups_before, self._worst_groups_of(downs))],
                budget_changes=[{"class": self.classes[c], "after": int(new_budgets[c]),
                                 "before": None if budgets_before is None else int(budgets_before[c]),
                                 "uses": int(usage(self.weight)[c])} for c in rebudgeted],
            )
        except Exception:
            self.state = previous
            move_back()
            raise

    @fiftyone_api.speaks_for_database(lambda run, *args, **kwargs: (
        f"The database stopped answering while student run '{run.key}' was reverted: once it is back, reload the "
        f"run to see whether a revision after {run.revision} was saved, and revert again if not"))
    def revert(self, revision, user=None, note=None):
        """Restores exactly the weights and bounds of history entry ``revision``, as a new entry
        (``note``: why, as for :meth:`tune`)."""
        revision = whole_number(revision, "the revision to restore", 0)
        note = validation.note(note)
        newest = self.newest_revision()
        if revision > newest:  # before the database sees it: it stores 64-bit numbers
            raise UnknownName(f"Student run '{self.key}' has no revision {revision}: pick one from its history "
                              f"(0 to {newest})")
        before = self._split_metrics()
        _, state, stored = store.load_revision(self.samples, self.key, self.uid, revision)
        previous, self.state = self.state, state
        try:
            self._restore_metrics(stored)
            after = self._split_metrics()
            splits = split_record(self.classes, after, before)
            return self._save(
                kind="revert",
                user=user,
                note=note,
                instructions=[],
                reverted_to=revision,
                metrics_before=splits["all"]["before"],
                metrics_after=splits["all"]["after"],
                splits=splits,
                per_class_metrics=stored_metrics(after),
            )
        except Exception:
            self.state = previous
            raise

    def _class_index(self, cls):
        if isinstance(cls, str) and cls in self.classes:
            return self.classes.index(cls)
        raise UnknownName(f"Class '{cls}' is not a class of student run '{self.key}': pick one of its classes")

    def _concept_index(self, name):
        if isinstance(name, str) and name in self.concepts:
            return self.concepts.index(name)
        raise UnknownName(f"Concept '{name}' is not in the corpus of student run '{self.key}': "
                          "pick one of its concepts")
