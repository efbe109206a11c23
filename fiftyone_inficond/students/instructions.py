"""A tune's instructions: what the user names (``{class: [concepts]}`` per direction, or
``(class, concept, direction)`` triples) as index
instructions for :func:`fiftyone_inficond.students.tuning.apply_instructions`, each concept's
synonyms taken along, and what a tune did, as its history entry records it (each named concept's
weight before and after, and the concepts that rose in their place).

Functions of a :class:`fiftyone_inficond.students.run.StudentRun` (its names, synonym groups and
weights); the arrays themselves are :mod:`fiftyone_inficond.students.tuning`'s.
"""

import numpy as np

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.budget import usage
from fiftyone_inficond.students.tuning import DIRECTIONS, Instruction
from fiftyone_inficond.synonyms import group_of


def triples_of(up=None, down=None, instructions=None):
    """``(class, concept, direction)`` triples of what the user names: ``up`` and ``down`` as
    ``{class: [concepts]}`` (a script), ``instructions`` as ``[{"class", "concept", "direction"}]``
    (the App's pending list, or a history entry's instructions)."""
    triples = [(cls, concept, direction) for direction, by_class in (("up", up), ("down", down))
               for cls, concept in _pairs(by_class, direction)]
    if instructions is None:
        return triples
    if not isinstance(instructions, (list, tuple)):
        raise InvalidRequest(
            f"Give the instructions as a list of {{'class', 'concept', 'direction'}}; got {instructions!r}"
        )
    for item in instructions:
        if not (isinstance(item, dict) and {"class", "concept"} <= set(item) and item.get("direction") in DIRECTIONS):
            raise InvalidRequest("Give each instruction as {'class': ..., 'concept': ..., 'direction': 'up' or "
                                 f"'down'}}; got {item!r}")
        triples.append((item["class"], item["concept"], item["direction"]))
    return triples


def parse(run, triples):
    """Instructions from ``(class, concept, direction)`` triples (:func:`triples_of`), each pair once,
    every member of a named concept's synonym group with it (``via`` the named one); refuses a
    concept tuned both ways for one class, and a 👎 on a concept the class's student does not use."""
    instructions = {}
    for cls, concept, direction in triples:
        named = Instruction(run._class_index(cls), run._concept_index(concept), direction)
        if direction == "up" and concept in run.left_out:
            raise InvalidRequest(
                f"'{concept}' names the class '{run.left_out[concept]}', so student run '{run.key}' leaves it out: "
                f"train with keep_class_concepts to let the students use it"
            )
        group = group_of(run.synonym_groups, named.concept)
        if direction == "down" and not run.weight[named.cls, group].any():
            raise InvalidRequest(
                f"{cls}'s student does not use '{concept}'{_also(run, named)}, so there is nothing to 👎: "
                f"choose one of the {int(usage(run.weight)[named.cls])} concepts it uses"
            )
        for member in group:
            item = Instruction(named.cls, member, direction, None if member == named.concept else named.concept)
            other = instructions.get((item.cls, item.concept))
            if other is not None and other.direction != direction:
                raise InvalidRequest(
                    f"'{run.concepts[member]}' is both 👍 and 👎 for '{cls}'{_also(run, named)}: "
                    f"choose one direction per concept"
                )
            if other is None or other.via is not None:  # a concept named itself wins over its group
                instructions[(item.cls, item.concept)] = item
    if not instructions:
        raise InvalidRequest("Nothing to tune: give up= and/or down= {class: [concepts]}, or instructions=")
    return list(instructions.values())


def describe(run, item):
    """An instruction in names: ``{"class", "concept", "direction"}`` (and ``via``)."""
    described = {"class": run.classes[item.cls], "concept": run.concepts[item.concept], "direction": item.direction}
    return described if item.via is None else {**described, "via": run.concepts[item.via]}


def change(run, previous, instructions):
    """Each instruction's concept's weight before (``previous``, a state) and after (the run's
    state now), with its bounds: the tune entry's ``change``."""
    return [
        {
            **describe(run, item),
            "weight_before": float(previous.weight[item.cls, item.concept]),
            "weight_after": float(run.weight[item.cls, item.concept]),
            "lower": _finite(run.state.lower[item.cls, item.concept]),
            "upper": _finite(run.state.upper[item.cls, item.concept]),
        }
        for item in instructions
    ]


def rose(run, previous, instructions, tuned_classes, n=3):
    """Per tuned_classes class, the untuned concepts whose weight rose most (at most ``n``, by at least a
    hundredth of the class's largest weight): what may have taken over what a 👎 took away, for
    the user to act on. ``{class: [{"concept", "weight_before", "weight_after"}, ...]}``."""
    named = {(item.cls, item.concept) for item in instructions}
    risen = {}
    for j in tuned_classes:
        before, after = previous.weight[j], run.weight[j]
        gain = after - before
        floor = 0.01 * max(float(np.abs(after).max()), 1e-6)
        order = [c for c in np.argsort(-gain, kind="stable")[: n + len(named)] if (j, c) not in named]
        risen[run.classes[j]] = [
            {"concept": run.concepts[c], "weight_before": float(before[c]), "weight_after": float(after[c])}
            for c in order[:n] if gain[c] > floor
        ]
    return risen


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
