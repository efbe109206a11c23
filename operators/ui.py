"""What the operators and the panels both show: the plugin's name (operator URIs), dropdowns,
the App steps that draw a concept's heatmap, and the words and figures of their answers (a
fine-tune's, the caveats of a run's figures, the names of sample groups). One module, beside the
operators whose URIs it names; the panels import it from here, so that the tune operator and the
Fine-tune button say the same thing."""

import fiftyone.operators.types as types

from fiftyone_inficond.overlay import show_concept_overlay
from fiftyone_inficond.students.evaluation import SPLITS, entry_metrics

PLUGIN = "@inficond/inficond"
THUMBS = {"up": "👍", "down": "👎"}


def show_overlay(ctx, samples, concept, field, set_view=False):
    """Writes ``concept``'s heatmap on ``samples`` and has the App draw it, in the order seen to
    work in the browser: the App reloads the dataset when the overlay field is new (it learns the
    field before it shows a view), shows ``samples`` in the grid with ``set_view``, then turns the
    overlay field on beside the labels already shown. Returns :func:`show_concept_overlay`'s answer."""
    shown = show_concept_overlay(samples, concept, field)
    if shown["new_field"]:
        ctx.ops.reload_dataset()
    if set_view:
        ctx.ops.set_view(samples)
    if shown["field"] not in ctx.active_fields:
        ctx.ops.set_active_fields(list(ctx.active_fields) + [shown["field"]])
    return shown


def share_of(shown, total, split):
    """"15 of the 60 held-out samples": how many of a split a view shows."""
    return f"{shown:,} of the {total:,} {SPLITS[split].removeprefix('all ')}"


def heatmap_legend(shown):
    """The heatmap's colours in words: what the App draws no legend for."""
    low, high = shown["range"]
    return (f"its heatmap colours the patches most like '{shown['concept']}', similarity {low:.2f} (purple) "
            f"to {high:.2f} (yellow), clear below")


def caveats(facts):
    """What a run's figures and explanations must be read with, as warnings (its :meth:`facts`):
    concepts of a model without weights, the concepts left out because they name a class, samples
    deleted since training, and figures on the training samples when none are held out."""
    warnings = []
    if facts["random_concepts"]:
        warnings.append("⚠️ These concepts come from a model without weights: they mean nothing. Compute concepts "
                        "again with the model's weights before trusting an explanation")
    if facts.get("left_out"):
        names = sorted(facts["left_out"])
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        warnings.append(f"ℹ️ Left out because they name a class: {shown} (a student explained by its own class "
                        f"name explains nothing; train with “Keep concepts that name a class” to use them)")
    if facts.get("samples_deleted"):
        warnings.append(f"⚠️ {facts['samples_deleted']:,} of the samples these students were trained on were deleted "
                        f"since: every figure is on the {facts['samples']:,} left")
    if facts["train_samples"] == facts["samples"]:
        warnings.append("⚠️ No sample is held out: every figure is on samples the students were trained on. Tag a "
                        "training split and train again to measure them fairly")
    return warnings


def group_name(group, run):
    """"ground-truth positives", or "teacher's predicted positives" for a run without ground truth:
    the samples an agreement group (``"positives"``/``"negatives"``) holds, named apart everywhere."""
    return f"ground-truth {group}" if run.config["gt_field"] else f"teacher's predicted {group}"


def dropdown(labels, placeholder=None):
    """A dropdown of ``{value: label}`` (operator forms and panels), saying ``placeholder`` while
    nothing is chosen."""
    view = types.DropdownView(**({} if placeholder is None else {"placeholder": placeholder}))
    for value, label in labels.items():
        view.add_choice(value, label=label)
    return view


def entry_minute(time):
    """"2026-12-02 16:05" of a history entry's ISO time (UTC), to the minute."""
    return time[:16].replace("T", " ")


def pct(value):
    return "–" if value is None else f"{100 * value:.1f}"


def signed_pct(value):
    return "–" if value is None else f"{100 * value:+.2f}"


def tuned_message(entry, split):
    """What a fine-tune changed on ``split``, in the figures its history entry keeps (those
    provenance shows): the Fine-tune button's answer and the tune operator's."""
    metrics = entry_metrics(entry, split)
    changes = [
        f"{cls}: student AP {pct(rows['before']['student_ap'])} → {pct(rows['after']['student_ap'])} "
        f"({_points(rows['before']['student_ap'], rows['after']['student_ap'])}), F1 vs teacher "
        f"{pct(rows['before']['f1'])} → {pct(rows['after']['f1'])}"
        for cls, rows in metrics["classes"].items()
    ]
    mean = _points(metrics["before"]["student_ap"], metrics["after"]["student_ap"])
    note = f" “{entry['note']}”" if entry.get("note") else ""
    return (f"✅ Revision {entry['revision']} saved{note} ({SPLITS[split]}) · " + "; ".join(changes)
            + f" · mean student AP {mean}  \n" + weights_text(entry)
            + "".join(f"  \n{groups_text(item)}" for item in entry.get("worst_groups", []))
            + "".join(f"  \n{item['class']} may now use {item['after']} concepts (budget was "
                      f"{item['before'] or 'every concept'}); its student uses {item['uses']}"
                      for item in entry.get("budget_changes", [])))


def groups_text(item):
    """The group a 👎'd concept's shortcut hurt most, before and after (an entry's ``worst_groups``
    item): "Worst group of car × cloud on the held-out samples: cars without cloud, 12 samples,
    student 42% → 58% right (teacher 40%)"."""
    after = item["after"]
    hardest = min((row for row in after if row["student"] is not None), key=lambda row: row["student"], default=None)
    if hardest is None:
        return ""
    before = next(row for row in item["before"] if (row["class"], row["concept"]) == (hardest["class"],
                                                                                    hardest["concept"]))
    who = item["class"] if hardest["class"] else f"not {item['class']}"
    return (f"Worst group of {item['class']} × {item['concept']} on {SPLITS[item['split']]}: {who} "
            f"{'with' if hardest['concept'] else 'without'} {item['concept']}, {hardest['samples']} samples, student "
            f"{share(before['student'])} → {share(hardest['student'])} right (teacher {share(hardest['teacher'])})")


def groups_line(result, concept):
    """The four groups of a class and ``concept`` (:meth:`worst_groups`), each as "student / teacher
    right (samples)", for the concept detail's header."""
    cls = result["class"]
    parts = [f"{cls if row['class'] else 'not ' + cls} {'with' if row['concept'] else 'without'} {concept}: "
             f"{share(row['student'])} / {share(row['teacher'])} ({row['samples']})" for row in result["groups"]]
    return f"Right in each group, student / teacher (samples): {' · '.join(parts)}"


def share(value):
    """A share in whole percent: "42%" ("–" for none)."""
    return "–" if value is None else f"{100 * value:.0f}%"


def weights_text(entry):
    """What the tuning did to the weights: each named concept's (with the synonyms it took
    along) and those that rose in its place, for the user to 👎 next if they stand in for it."""
    via = {}
    for item in entry["change"]:
        via.setdefault((item["class"], item.get("via", item["concept"])), []).append(item)
    tuned = []
    for (cls, named), items in via.items():
        items.sort(key=lambda item: item["concept"] != named)
        also = [item["concept"] for item in items[1:]]
        weights = ", ".join(f"{item['weight_before']:.3f} → {item['weight_after']:.3f}" for item in items)
        tuned.append(f"{THUMBS[items[0]['direction']]} *{named}*" + (f" (+ {', '.join(also)})" if also else "")
                     + f" for {cls}: {weights}")
    rose = [
        f"for {cls}: " + ", ".join(f"*{r['concept']}* {r['weight_after'] - r['weight_before']:+.3f}" for r in rows)
        for cls, rows in (entry.get("rose") or {}).items() if rows
    ]
    return "; ".join(tuned) + (f" · rose in their place {'; '.join(rose)}" if rose else "")


def _points(before, after):
    if before is None or after is None:
        return "–"
    return f"{signed_pct(after - before)} pts"
