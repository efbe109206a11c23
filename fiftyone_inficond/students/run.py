"""A student run: its students' predictions, metrics, rankings and what-ifs, and its tuning and
reverting, each saved as a revision. Runs are trained, loaded and listed by
:mod:`fiftyone_inficond.students.registry`.

Every write validates all of its inputs first and then writes in an order where a crash at
any point leaves the old state or the new one (see :mod:`fiftyone_inficond.students.store`).
"""


import numpy as np
from scipy.special import expit, logit

from fiftyone_inficond import fiftyone_api, validation
from fiftyone_inficond.errors import InvalidRequest, StaleRunError, UnknownName
from fiftyone_inficond.runs import CONCEPTS_METHOD, run_config
from fiftyone_inficond.students import store
from fiftyone_inficond.students.budget import usage
from fiftyone_inficond.students.cache import CachedInputs, InputsCache
from fiftyone_inficond.students.metrics import GROUPS, SUBSETS, agreement_counts, agreement_subsets, class_metrics
from fiftyone_inficond.students.ranking import presence_discrepancy, top_by_discrepancy, top_by_weight
from fiftyone_inficond.students.training import (
    CHUNK_ROWS,
    MAX_EPOCHS,
    TrainingConfig,
    fit,
)
from fiftyone_inficond.students.tuning import DIRECTIONS, MAX_FACTOR, Instruction, apply_instructions
from fiftyone_inficond.students.whatif import weight_range, what_if
from fiftyone_inficond.synonyms import group_of
from fiftyone_inficond.validation import number, whole_number

DEFAULT_TUNING_EPOCHS = 3
SPLITS = {"validation": "held-out samples", "train": "training samples", "all": "all samples"}  # in words
GALLERY = 100  # the most samples a presence view shows by default


def gallery_size(n_rows):
    """How many of ``n_rows`` samples a presence view shows by default: the top quarter, at least
    one, at most :data:`GALLERY`."""
    return min(GALLERY, max(1, -(-n_rows // 4)))


class StudentRun:
    """A student run with its data in memory: metrics, rankings, what-ifs, tuning, history.

    Attributes:
        classes: class names (rows of ``weight``)
        concepts: concept names (columns of ``weight``)
        state: the current :class:`fiftyone_inficond.students.store.StudentState`
        revision: the stored revision ``state`` belongs to
    """

    def __init__(self, samples, key, config, data, concepts):
        self.samples = samples
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
            self.inputs = self._standardize(raw, out=raw if in_place else None)
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
        return logits[rows][:, columns]

    def _compute_logits(self, columns):
        """``(n, len(columns))`` logits of every sample, chunk by chunk: no copy of the inputs."""
        weight, bias = self.weight[columns], self.bias[columns]
        out = np.empty((len(self.ids), len(bias)), dtype=np.float32)
        for start in range(0, len(out), CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            out[part] = self.inputs[part] @ weight.T + bias
        return out

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
        inputs = self._standardize(np.stack([v[:width] for v in vectors]).astype(np.float32))
        return ids, expit(inputs @ self.weight.T + self.bias).astype(np.float32)

    def _standardization(self):
        return (np.asarray(self.config["concept_mean"], dtype=np.float32),
                np.asarray(self.config["concept_std"], dtype=np.float32))

    def _standardize(self, concepts, out=None):
        """``(n, n_concepts)`` concept vectors standardized as on the training split, chunk by
        chunk into a new matrix (no full-size temporary) or into ``out`` (``concepts`` itself:
        in place)."""
        mean, std = self._standardization()
        out = np.empty(concepts.shape, dtype=np.float32) if out is None else out
        for start in range(0, len(concepts), CHUNK_ROWS):
            out[start : start + CHUNK_ROWS] = (concepts[start : start + CHUNK_ROWS] - mean) / std
        return out

    def _train_rows(self):
        """Indices of the training rows, ``None`` when every row trains."""
        return None if self.data.train.all() else np.flatnonzero(self.data.train)

    def _probabilities(self, rows):
        return expit(self.logits(rows))

    def _truth(self, rows):
        return None if self.data.truth is None else self.data.truth[rows]

    @property
    def ids(self):
        return self.data.ids

    @property
    def splits(self):
        """The splits metrics can be shown for, the held-out one first when there is one."""
        return ["all"] if self.data.train.all() else ["validation", "train", "all"]

    def facts(self):
        """What the run is and was trained on, JSON-safe (a header, a tooltip, provenance)."""
        concepts = run_config(self.samples, self.config["concepts_field"], CONCEPTS_METHOD) or {}
        return {
            "key": self.key,
            "revision": self.revision,
            "samples": len(self.ids),
            "train_samples": int(self.data.train.sum()),
            "classes": len(self.classes),
            "concepts": len(self.concepts),
            "concepts_field": self.config["concepts_field"],
            "concept_model": concepts.get("model"),
            "teacher_field": self.config["teacher_field"],
            "gt_field": self.config["gt_field"],
            "threshold": self.threshold,
            "budget": self.training.budget,
            "concepts_used": usage(self.weight).tolist() if self.state is not None else None,
        }

    # --- evaluation --------------------------------------------------------------------

    def _rows(self, split):
        # Without a split every row trains: a slice avoids copying the whole matrix.
        train = slice(None) if self.data.train.all() else self.data.train
        splits = {"all": slice(None), "train": train, "validation": ~self.data.train}
        if split not in splits:
            raise InvalidRequest(f"split must be one of {sorted(splits)}; got '{split}'")
        if split == "validation" and self.data.train.all():
            raise InvalidRequest(
                f"Student run '{self.key}' has no validation split: train with train_tag or split_field"
            )
        return splits[split]

    def _metrics(self, split="all", columns=None):
        """Metrics of all classes, or of ``columns`` only; cached per state and split."""
        cached = self._metrics_cache.get(split)
        if columns is None and cached is not None and cached[0] is self.state:
            return cached[1]
        rows = self._rows(split)
        columns = slice(None) if columns is None else columns
        truth = None if self.data.truth is None else self.data.truth[rows][:, columns]
        student = expit(self.logits(rows, columns))
        metrics = class_metrics(self.data.teacher[rows][:, columns], student, truth, self.threshold)
        if columns == slice(None):
            self._metrics_cache[split] = (self.state, metrics)
        return metrics

    def performance(self, split="all", sort_by=None):
        """Per-class metrics (rows of dicts, worst first when ``sort_by`` is given) and their means.

        Returns:
            ``{"classes": [...], "summary": {...}}``
        """
        metrics = self._metrics(split)
        rows = metrics.rows(self.classes)
        if sort_by is not None:
            rows = [rows[j] for j in metrics.order(sort_by)]
        return {"classes": rows, "summary": metrics.summary()}

    def agreement(self, cls, split="all"):
        """Sample ids of the four agreement subsets of a class among its positives and its
        negatives: ``{"positives": {"both_right": [ids], ...}, "negatives": {...}}``."""
        column = self._class_index(cls)
        rows = np.arange(len(self.ids))[self._rows(split)]
        truth = None if self.data.truth is None else self.data.truth[rows, column]
        student = expit(self._class_logits(column)[rows])
        subsets = agreement_subsets(self.data.teacher[rows, column], student, truth, self.threshold)
        ids = np.asarray(self.ids)[rows]
        return {
            group: {name: ids[members].tolist() for name, members in named.items()}
            for group, named in subsets.items()
        }

    def agreement_counts(self, split="all"):
        """Sizes of every class's agreement subsets at once, for the performance table:
        ``{class: {"positives": {"both_right": n, ...}, "negatives": {...}}}``."""
        rows = self._rows(split)
        counts = agreement_counts(self.data.teacher[rows], self._probabilities(rows), self._truth(rows), self.threshold)
        return {
            name: {group: {subset: int(values[j]) for subset, values in named.items()}
                   for group, named in counts.items()}
            for j, name in enumerate(self.classes)
        }

    def agreement_view(self, cls, group, subset, split="all"):
        """The samples of one agreement subset as a FiftyOne view (e.g. for the App's grid)."""
        if group not in GROUPS or subset not in SUBSETS:
            raise InvalidRequest(f"An agreement subset is one of {GROUPS} and one of {SUBSETS}; "
                                 f"got {group!r}, {subset!r}")
        ids = self.agreement(cls, split)[group][subset]
        return fiftyone_api.dataset_of(self.samples).select(ids, ordered=True)

    # --- concepts ----------------------------------------------------------------------

    def top_concepts(self, cls, n=10, by="weight", sign="positive", among=None):
        """The ``n`` most important concepts of a class (of the concept names ``among``, if
        given) as ``[(name, value), ...]``.

        ``by="weight"`` ranks the concepts the student uses by weight (``sign``: positive,
        negative, absolute; ``among`` may name unused ones, ranked last);
        ``by="positives"``/``"negatives"`` ranks by the presence discrepancy between samples
        the student gets wrong and right among the teacher's positives / negatives.
        """
        column = self._class_index(cls)
        n = whole_number(n, "the number of concepts to show", 1)
        if among is not None:
            kept = {self.concepts[self._concept_index(name)] for name in among}  # known names only
            ranked = self.top_concepts(cls, len(self.concepts), by, sign)
            unused = sorted(kept - {name for name, _ in ranked}, key=self.concepts.index)
            return ([(name, value) for name, value in ranked if name in kept] + [(name, 0.0) for name in unused])[:n]
        if by == "weight":  # of the concepts the student uses: a zero weight decides nothing
            order, values = top_by_weight(self.weight, column, len(self.concepts), sign)
            order, values = order[values != 0][:n], values[values != 0][:n]
        elif by in GROUPS:
            # Of the raw vectors: the inputs' discrepancy scaled back (means commute with it).
            discrepancy = presence_discrepancy(self.inputs, *self._decisions(column))[by] * self._standardization()[1]
            order, values = top_by_discrepancy(discrepancy, n)
        else:
            raise InvalidRequest(f"Rank concepts by 'weight', 'positives' or 'negatives'; got {by!r}")
        return [(self.concepts[j], float(v)) for j, v in zip(order, values)]

    def uses(self, cls):
        """Every concept a class's student uses (a nonzero weight), largest ``|weight|`` first:
        ``[(name, weight), ...]``; the whole of what decides its predictions."""
        row = self.weight[self._class_index(cls)]
        used = np.flatnonzero(row)
        return [(self.concepts[j], float(row[j])) for j in used[np.argsort(-np.abs(row[used]), kind="stable")]]

    def budget_of(self, cls):
        """How many concepts a class's student may use (``None``: every concept)."""
        budgets = self.config.get("class_budgets")
        return None if budgets is None else int(budgets[self._class_index(cls)])

    def synonyms_of(self, concept):
        """The other concepts of ``concept``'s synonym group, which a 👍/👎 on it also tunes."""
        j = self._concept_index(concept)
        return [self.concepts[i] for i in group_of(self.synonym_groups, j) if i != j]

    def tuned(self, cls):
        """The concepts of a class held by a bound: ``{"up": names, "down": names}``."""
        column = self._class_index(cls)
        up = np.flatnonzero(np.isfinite(self.state.lower[column]))
        down = np.flatnonzero(np.isfinite(self.state.upper[column]))
        return {"up": [self.concepts[j] for j in up], "down": [self.concepts[j] for j in down]}

    def presence(self, cls, concept, split="all"):
        """A concept's presence (its concept-vector value) among the teacher's positives and its
        negatives of a class: ``{"positives": (p,) float32, "negatives": (q,) float32}``."""
        column, j = self._class_index(cls), self._concept_index(concept)
        rows = self._rows(split)
        present = self.data.concepts[rows, j]
        teacher_says = self.data.teacher[rows, column] >= self.threshold
        return {"positives": present[teacher_says], "negatives": present[~teacher_says]}

    def presence_view(self, concept, split="all", n=None):
        """The run's samples of ``split`` where ``concept`` is most present, most first, as a
        FiftyOne view in that order: ``n`` of them, by default the split's top quarter, at most
        :data:`GALLERY` (every sample of a small split, sorted, would say nothing of where the
        concept is)."""
        j = self._concept_index(concept)
        rows = np.arange(len(self.ids))[self._rows(split)]
        order = rows[np.argsort(-self.data.concepts[rows, j], kind="stable")]
        n = gallery_size(len(rows)) if n is None else whole_number(n, "the number of samples to show", 1)
        return fiftyone_api.dataset_of(self.samples).select(np.asarray(self.ids)[order[:n]].tolist(), ordered=True)

    def split_size(self, split="all"):
        """How many of the run's samples ``split`` holds."""
        return len(np.arange(len(self.ids))[self._rows(split)])

    def what_if(self, cls, concepts=None, n=10, n_values=41):
        """Metrics against the teacher as each concept's weight varies, without retraining.

        Args:
            cls: a class name
            concepts: concept names; by default the class's top ``n`` by weight
            n_values: weight values per curve

        Returns:
            JSON-safe ``{"concepts": names, "weights": current weight per concept, "values":
            [c][m] weights tried, "accuracy"|"f1"|"recall"|"precision": [c][m]}``
        """
        column = self._class_index(cls)
        n_values = whole_number(n_values, "the number of what-if values", 2, 1001)
        n = whole_number(n, "the number of concepts", 1, len(self.concepts))
        names = concepts or [name for name, _ in self.top_concepts(cls, n)]
        indices = [self._concept_index(name) for name in names]
        row = self.weight[column]
        values = np.stack([weight_range(row, j, n_values) for j in indices])
        teacher_says = self.data.teacher[:, column] >= self.threshold
        logits = self._class_logits(column)
        curves = what_if(logits, self.inputs, row, indices, teacher_says, values, self.threshold)
        return {
            "concepts": names,
            "weights": row[indices].astype(float).tolist(),
            "values": values.astype(float).tolist(),
            **{metric: curve.astype(float).tolist() for metric, curve in curves.items()},
        }

    def _class_logits(self, column):
        """``(n,)`` logits of one class's student."""
        return self.logits(columns=column)

    def _decisions(self, column):
        teacher_says = self.data.teacher[:, column] >= self.threshold
        student_says = self._class_logits(column) >= logit(self.threshold)
        return teacher_says, student_says

    # --- tuning and history -----------------------------------------------------------

    def tune(self, up=None, down=None, factor=1.5, epochs=DEFAULT_TUNING_EPOCHS, user=None, note=None):
        """Up-tunes and down-tunes concepts, retrains the tuned classes and saves the iteration.

        Args:
            up, down: ``{class name: [concept names]}``
            factor: how strongly (> 1; see :mod:`fiftyone_inficond.students.tuning`)
            epochs: retraining epochs, starting from the adjusted weights
            user: who tunes (the OS user by default)
            note: why, in a line ("removed the cloud shortcut"), kept in the history

        Returns:
            the new history entry

        Raises:
            StaleRunError: someone saved a newer revision since this run was loaded
        """
        factor = number(factor, "the tuning factor", 1, MAX_FACTOR, low_open=True)
        epochs = whole_number(epochs, "retraining epochs", 1, MAX_EPOCHS)
        note = validation.note(note)
        instructions = self._instructions({"up": up, "down": down})
        store.require_fresh(self.samples, self.key, self.uid, self.revision)  # before retraining, not only at the save
        before = self._metrics()
        lower, upper, start = apply_instructions(
            self.weight, self.state.lower, self.state.upper, instructions, factor
        )
        tuned = sorted({item.cls for item in instructions})
        budgets = self.config.get("class_budgets")
        weight, bias = self.weight.copy(), self.bias.copy()
        weight[tuned], bias[tuned] = fit(
            self.inputs,
            self.data.teacher[:, tuned],
            start[tuned],
            self.bias[tuned],
            lower[tuned],
            upper[tuned],
            TrainingConfig(**{**self.config["training"], "epochs": epochs}),
            rows=self._train_rows(),
            budgets=None if budgets is None else np.asarray(budgets)[tuned],
        )
        previous, cached, (_, logits) = self.state, dict(self._metrics_cache), self._logits
        self.state = store.StudentState(weight, bias, lower, upper)
        if logits is not None:  # only the tuned classes' logits changed
            logits = logits.copy()
            logits[:, tuned] = self._compute_logits(tuned)
            self._logits = (self.state, logits)
        # Students are independent: only the tuned classes' metrics can have changed.
        for split, (_, metrics) in cached.items():
            self._metrics_cache[split] = (self.state, metrics.with_columns(tuned, self._metrics(split, tuned)))
        after = self._metrics()
        rows_before, rows_after = before.rows(self.classes), after.rows(self.classes)
        try:
            return self._save(
                kind="tune",
                user=user,
                note=note,
                instructions=[self._describe(item) for item in instructions],
                factor=factor,
                epochs=epochs,
                metrics_before=before.summary(),
                metrics_after=after.summary(),
                class_metrics={self.classes[j]: {"before": rows_before[j], "after": rows_after[j]} for j in tuned},
                change=self._change(previous, instructions),
                rose=self._rose(previous, instructions, tuned),
            )
        except Exception:
            self.state = previous
            raise

    def revert(self, revision, user=None, note=None):
        """Restores exactly the weights and bounds of history entry ``revision``, as a new entry
        (``note``: why, as for :meth:`tune`)."""
        revision = whole_number(revision, "the revision to restore", 0)
        note = validation.note(note)
        newest = self.newest_revision()
        if revision > newest:  # before the database sees it: it stores 64-bit numbers
            raise UnknownName(f"Student run '{self.key}' has no revision {revision}: pick one from its history "
                              f"(0 to {newest})")
        before = self._metrics().summary()
        _, state = store.load_state(self.samples, self.key, self.uid, revision)
        previous, self.state = self.state, state
        try:
            return self._save(
                kind="revert",
                user=user,
                note=note,
                instructions=[],
                reverted_to=revision,
                metrics_before=before,
                metrics_after=self._metrics().summary(),
            )
        except Exception:
            self.state = previous
            raise

    @property
    def history(self):
        """Every iteration, oldest first: kind, who, when, instructions, metrics, change."""
        return store.list_entries(self.samples, self.uid)

    def newest_revision(self):
        """The newest stored revision (one small read): larger than :attr:`revision` when
        someone saved since this run was loaded."""
        return store.newest_revision(self.samples, self.uid)

    def reload(self):
        """Moves to the newest stored revision (e.g. after a :class:`StaleRunError`)."""
        if store.run_uid(self.samples, self.key) != self.uid:
            raise StaleRunError(
                f"Student run '{self.key}' was deleted, renamed or trained again since you loaded it: load it again"
            )
        self.revision, self.state = store.load_state(self.samples, self.key, self.uid)
        return self

    def _save(self, **info):
        entry = store.append_entry(self.samples, self.key, self.uid, self.revision + 1, self.state, **info)
        self.revision += 1
        return entry

    def _change(self, previous, instructions):
        return [
            {
                **self._describe(item),
                "weight_before": float(previous.weight[item.cls, item.concept]),
                "weight_after": float(self.weight[item.cls, item.concept]),
                "lower": _finite(self.state.lower[item.cls, item.concept]),
                "upper": _finite(self.state.upper[item.cls, item.concept]),
            }
            for item in instructions
        ]

    def _rose(self, previous, instructions, tuned, n=3):
        """Per tuned class, the untuned concepts whose weight rose most (at most ``n``, by at
        least a hundredth of the class's largest weight): what may have taken over what a 👎
        took away, for the user to act on. ``{class: [{"concept", "weight_before",
        "weight_after"}, ...]}``."""
        named = {(item.cls, item.concept) for item in instructions}
        rose = {}
        for j in tuned:
            before, after = previous.weight[j], self.weight[j]
            gain = after - before
            floor = 0.01 * max(float(np.abs(after).max()), 1e-6)
            order = [c for c in np.argsort(-gain, kind="stable")[: n + len(named)] if (j, c) not in named]
            rose[self.classes[j]] = [
                {"concept": self.concepts[c], "weight_before": float(before[c]), "weight_after": float(after[c])}
                for c in order[:n] if gain[c] > floor
            ]
        return rose

    def _describe(self, item):
        described = {"class": self.classes[item.cls], "concept": self.concepts[item.concept],
                     "direction": item.direction}
        return described if item.via is None else {**described, "via": self.concepts[item.via]}

    def _instructions(self, by_direction):
        """Instructions from ``{"up": {class: [concepts]}, "down": ...}``, each pair once;
        refuses a concept tuned both ways for one class."""
        instructions = {}
        for direction in DIRECTIONS:
            for cls, concept in _pairs(by_direction[direction], direction):
                named = Instruction(self._class_index(cls), self._concept_index(concept), direction)
                group = group_of(self.synonym_groups, named.concept)
                if direction == "down" and not self.weight[named.cls, group].any():
                    raise InvalidRequest(
                        f"{cls}'s student does not use '{concept}'{_also(self, named)}, so there is nothing to 👎: "
                        f"choose one of the {int(usage(self.weight)[named.cls])} concepts it uses"
                    )
                for member in group:
                    item = Instruction(named.cls, member, direction, None if member == named.concept else named.concept)
                    other = instructions.get((item.cls, item.concept))
                    if other is not None and other.direction != direction:
                        raise InvalidRequest(
                            f"'{self.concepts[member]}' is both 👍 and 👎 for '{cls}'{_also(self, named)}: "
                            f"choose one direction per concept"
                        )
                    if other is None or other.via is not None:  # a concept named itself wins over its group
                        instructions[(item.cls, item.concept)] = item
        if not instructions:
            raise InvalidRequest("Nothing to tune: give up= and/or down= {class: [concepts]}")
        return list(instructions.values())

    def _class_index(self, cls):
        if isinstance(cls, str) and cls in self.classes:
            return self.classes.index(cls)
        raise UnknownName(f"Class '{cls}' is not a class of student run '{self.key}': pick one of its classes")

    def _concept_index(self, name):
        if isinstance(name, str) and name in self.concepts:
            return self.concepts.index(name)
        raise UnknownName(f"Concept '{name}' is not in the corpus of student run '{self.key}': "
                          "pick one of its concepts")


class Destandardized:
    """The concept vectors of a run read back from its standardized inputs (``inputs * std +
    mean``, float32; within a few float32 ulps of the stored values), so that a run holds one
    matrix, not two: indexed like the ``(n, n_concepts)`` array, rows and columns, with only the
    selected part computed."""

    def __init__(self, inputs, mean, std):
        self.inputs, self.mean, self.std = inputs, mean, std
        self.shape, self.dtype = inputs.shape, inputs.dtype

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, columns = key
            return self.inputs[rows, columns] * self.std[columns] + self.mean[columns]
        return self.inputs[key] * self.std + self.mean

    def __array__(self, dtype=None, copy=None):
        array = self[:]
        return array if dtype is None else array.astype(dtype)


def _pairs(by_class, direction):
    """``(class, concept)`` pairs of ``{class: [concepts]}`` (one concept may be a string)."""
    if by_class is None:
        return []
    if not isinstance(by_class, dict):
        raise InvalidRequest(
            f"Give the {'👍' if direction == 'up' else '👎'} concepts as {{class: [concepts]}}, "
            f"e.g. {{'airplane': ['wing']}}; got {by_class!r}"
        )
    pairs = []
    for cls, concepts in by_class.items():
        concepts = [concepts] if isinstance(concepts, str) else concepts
        if not isinstance(concepts, (list, tuple)):
            raise InvalidRequest(f"Give the concepts to tune for '{cls}' as a list of names; got {concepts!r}")
        pairs.extend((cls, concept) for concept in concepts)
    return pairs


def _also(run, item):
    """`` (or its synonyms 'a', 'b')`` where the instruction's concept has synonyms."""
    others = run.synonyms_of(run.concepts[item.concept])
    return f" (or its synonyms {', '.join(repr(o) for o in others)})" if others else ""


def _finite(value):
    return float(value) if np.isfinite(value) else None
