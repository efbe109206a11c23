"""The pending 👍/👎 and Fine-tune, shared by the knowledge, concept detail and why-this-image
panels: the pending line, the tuning boxes beside Fine-tune, and the two-step press (an answer at
once, then the tuning) with the answer that says what changed."""

from ..operators.ui import THUMBS, tuned_message
from .display import COLOURS
from .workbench import read_workbench


def usage_text(run, cls):
    """"its student uses 14 of 1,153 concepts (budget 16)": how much of the corpus decides a class."""
    budget = run.budget_of(cls)
    limit = "" if budget is None else f" (budget {budget})"
    return f"its student uses {len(run.uses(cls))} of {len(run.concepts):,} concepts{limit}"


def toggle_pending(workbench, concept, direction):
    """The pending instructions with ``direction`` on ``concept`` for the workbench's class added,
    or removed when it was there (one instruction per class and concept: the newest wins)."""
    item = {"class": workbench["cls"], "concept": concept, "direction": direction}
    others = [p for p in workbench["pending"] if (p["class"], p["concept"]) != (item["class"], concept)]
    return others if item in workbench["pending"] else others + [item]


def has_pending(workbench):
    """Whether Fine-tune has something to apply: a 👍/👎 or a class's new budget."""
    return bool(workbench["pending"] or workbench["budgets"])


def pending_text(workbench, run):
    pending, budgets = workbench["pending"], workbench["budgets"]
    if not has_pending(workbench):
        return "No pending instructions: click 👍 or 👎 beside a concept."
    blocks = [
        f"{COLOURS[p['direction']]} {THUMBS[p['direction']]} *{p['concept']}*{_synonyms(run, p['concept'])} "
        f"for {p['class']}" for p in pending
    ] + [f"{cls} may use {n} concepts (budget {_budget(run, cls)} now)" for cls, n in budgets.items()]
    return f"**Pending** {' '.join(blocks)} · factor {workbench['factor']}, {workbench['epochs']} epochs"


def _budget(run, cls):
    budget = run.budget_of(cls) if cls in run.classes else None
    return f"{len(run.concepts):,}, every concept" if budget is None else budget


def _synonyms(run, concept):
    """`` (+ clouds)``: the synonyms a 👍/👎 on ``concept`` also tunes."""
    others = run.synonyms_of(concept) if concept in run.concepts else []
    return f" (+ {', '.join(others)})" if others else ""


def start_fine_tune(panel, ctx):
    """Fine-tune's first answer, drawn at once: what is being tuned, the buttons off. The tuning
    itself is the panel's ``on_fine_tune_now``, which the App runs as soon as it has drawn this
    (a panel event answers once, at its end: without this the user saw nothing for seconds)."""
    workbench = read_workbench(ctx)
    if _nothing_pending(panel, ctx, workbench):
        return
    settings = tuning_settings(ctx, workbench)
    classes = sorted({item["class"] for item in workbench["pending"]} | set(workbench["budgets"]))
    count = len(workbench["pending"]) + len(workbench["budgets"])
    ctx.panel.state.set({"has_pending": False, "message": (
        f"⏳ Fine-tuning {', '.join(classes)}: {count} instruction{'s' if count != 1 else ''}, "
        f"{settings['epochs']} epochs; the answer follows in a few seconds")})
    # the method in the params: the App looks up a triggered URI as it is, "#method" and all
    ctx.trigger(panel.uri, {"__method__": "on_fine_tune_now", "panel_id": ctx.panel_id, "panel_state": ctx.panel_state})


def _nothing_pending(panel, ctx, workbench):
    """True, and the user told so, when there is nothing to fine-tune (pressed with nothing
    pending, or cleared in the App's other browser meanwhile)."""
    if has_pending(workbench):
        return False
    panel.change(ctx, message="Nothing to fine-tune: 👍 or 👎 a concept (or change how many concepts a class may "
                              "use) first")
    return True


def fine_tune(panel, ctx):
    """Applies every pending instruction in one tuning iteration and says what it changed."""
    workbench = read_workbench(ctx)
    if _nothing_pending(panel, ctx, workbench):
        return
    run = panel.run_to_save_on(ctx, workbench)
    if run is None:
        return
    settings = tuning_settings(ctx, workbench)
    entry = run.tune(instructions=workbench["pending"], budgets=typed_budgets(ctx, workbench, run) or None,
                     **settings, user=ctx.user_id)
    said = panel.says(tuned_message(entry, workbench["split"]))
    workbench.update(pending=[], budgets={}, note="", revision=entry["revision"], **said)
    panel.publish(ctx, workbench)


TYPED = ("factor", "epochs", "note")  # the boxes beside Fine-tune


NOTE_HINT = "why, e.g. removed the cloud shortcut"  # a note box's placeholder


def note_box(revision):
    """The note box's name: a new box for each revision, so it starts empty after a fine-tune (the
    App's text box keeps what was typed in it whatever the state says)."""
    return f"note_{revision}"


def tuning_boxes(workbench, revision):
    """The tuning row's state: what its boxes show."""
    return {"factor": workbench["factor"], "epochs": workbench["epochs"], note_box(revision): workbench["note"]}


def typed_budgets(ctx, workbench, run):
    """The pending budgets with the class's budget box as the acting panel holds it now: typing "48"
    sends "4" then "48", and the last may reach the server after the press of Fine-tune."""
    typed, cls = (ctx.panel.state.get("controls") or {}).get("budget"), workbench["cls"]
    if isinstance(typed, int) and not isinstance(typed, bool) and cls in run.classes:
        return with_budget(workbench["budgets"], cls, typed, run)
    return workbench["budgets"]


def with_budget(budgets, cls, n, run):
    """The pending ``budgets`` with class ``cls`` allowed ``n`` concepts: pending only where that
    changes what its student may use now."""
    return {**{other: b for other, b in budgets.items() if other != cls},
            **({cls: n} if n != run.allowed(cls) else {})}


def tuning_settings(ctx, workbench):
    """The tuning factor, epochs and note a fine-tune uses: as the acting panel's boxes hold them
    now (the App sends its panel state with every event), else the workbench's. What the user
    sees is what a fine-tune uses, whichever of the typing's intermediate values reached the
    workbench last."""
    state = ctx.panel.state
    typed = dict(state.get("tuning") or {})
    typed["note"] = typed.get(note_box(state.get("revision")))
    return {name: workbench[name] if typed.get(name) is None else typed[name] for name in TYPED}
