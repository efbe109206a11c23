"""A class's student may be let use more (or fewer) concepts without code: from the SDK and from the
knowledge panel, kept with the revision, taken back by a revert (issue "No class left behind")."""

import pytest
from panel_driver import PanelDriver

from fiftyone_inficond.errors import InvalidRequest
from fiftyone_inficond.students.registry import load_students, train_students


@pytest.fixture
def budgeted(distilled):
    distilled.take(80, seed=0).tag_samples("train")
    return distilled, train_students(distilled, key="b", train_tag="train", epochs=2, budget=4)


def test_a_budget_raised_for_one_class_from_the_sdk_retrains_it_alone_and_a_revert_takes_it_back(budgeted):
    dataset, run = budgeted
    others = run.weight.copy()
    assert run.budget_of("person") == 4
    entry = run.tune(budgets={"person": 12}, epochs=2)
    assert run.budget_of("person") == 12 and run.budget_of("car") == 4
    (change,) = entry["budget_changes"]
    assert (change["class"], change["before"], change["after"]) == ("person", 4, 12)
    assert 4 < len(run.uses("person")) <= 12 == load_students(dataset, "b").budget_of("person")
    person = run.classes.index("person")
    assert (run.weight[:person] == others[:person]).all() and (run.weight[person + 1:] == others[person + 1:]).all()
    run.tune(down={"person": [run.uses("person")[0][0]]}, epochs=1)  # a later tune keeps the budget
    assert run.budget_of("person") == 12
    run.revert(0)
    assert run.budget_of("person") == 4 and load_students(dataset, "b").budget_of("person") == 4
    with pytest.raises(InvalidRequest, match="The budget of person must be a whole number from 1 to"):
        run.tune(budgets={"person": 0})


def test_the_knowledge_panel_raises_a_classs_budget_at_the_next_fine_tune(budgeted):
    dataset, run = budgeted
    knowledge = PanelDriver(dataset, "inficond_knowledge")
    knowledge.event("on_load")
    knowledge.event("on_change_cls", value="person")
    assert knowledge.state["controls"]["budget"] == 4 and "(budget 4)" in knowledge.state["header"]
    knowledge.state["controls"]["budget"] = 10  # the box holds what was typed, as the App's panel state does
    knowledge.event("on_change_budget", value=10)
    assert "person may use 10 concepts (budget 4 now)" in knowledge.state["pending"]
    assert knowledge.state["has_pending"]
    knowledge.event("on_fine_tune_now")
    assert "person may now use 10 concepts (budget was 4); its student uses" in knowledge.state["message"]
    assert "(budget 10)" in knowledge.state["header"] and knowledge.state["controls"]["budget"] == 10
    assert load_students(dataset, "b").budget_of("person") == 10
    knowledge.event("on_change_budget", value=1)  # "12" typed: its "1" reached the server, its "12" not yet
    knowledge.state["controls"]["budget"] = 12
    knowledge.event("on_fine_tune_now")  # Fine-tune takes what the box holds
    assert load_students(dataset, "b").budget_of("person") == 12
    knowledge.event("on_change_budget", value=10**6)
    assert "must be a whole number from 1 to" in knowledge.state["message"]
