"""The set-up forms a domain expert fills in on their own dataset: every known choice a dropdown,
every check in the form before Execute, and a checkpoint opened without configuring anything in an
App of one person, but only from the listed folders in an App whose database is shared."""

import re

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from conftest import COCO128, TINY_MODEL
from fiftyone.operators.executor import ExecutionContext, ExecutionError

from fiftyone_inficond.runs import delete_run

PLUGIN = "@inficond/inficond"


def _form(operator, dataset, **params):
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    return foo.get_operator(f"{PLUGIN}/{operator}").resolve_input(ctx).type.properties


def _choices(prop):
    return [choice.value for choice in prop.view.choices]


def _execute(operator, samples, **params):
    return foo.execute_operator(f"{PLUGIN}/{operator}", ctx=dict(view=samples.view(), params=params)).result


def test_the_concepts_form_offers_models_their_weights_and_the_shipped_corpora_as_choices(coco128):
    form = _form("compute_concepts", coco128, model="ViT-B-16")
    assert {"ViT-B-16", TINY_MODEL} <= set(_choices(form["model"]))
    assert {"(none)", "openai", "checkpoint file"} <= set(_choices(form["pretrained"]))
    assert form["pretrained"].default == "(none)"
    assert _choices(form["corpus_source"]) == ["broden", "world", "file", "list"]
    assert "checkpoint" not in form and "corpus_path" not in form  # asked for only once chosen


@pytest.mark.parametrize("checkpoint, refused", [
    ("/etc/hostname", "outside the folders this App may read"),
    (f"{COCO128}/no-such.pt", "There is no file"),
    (f"{COCO128}/teacher_yolox_nano.json", "is not a checkpoint"),
])
def test_a_checkpoint_the_app_cannot_use_is_refused_in_the_form_and_kept(coco128, checkpoint, refused):
    form = _form("compute_concepts", coco128, model=TINY_MODEL, pretrained="checkpoint file",
                 checkpoint={"absolute_path": checkpoint})
    assert form["checkpoint"].invalid and refused in form["checkpoint"].error_message


def test_one_persons_app_opens_any_checkpoint_and_a_shared_one_only_from_its_list(coco128, tiny_checkpoint,
                                                                                   monkeypatch):
    monkeypatch.delenv("INFICOND_SERVER_DIRS")
    params = dict(model=TINY_MODEL, pretrained="checkpoint file", checkpoint={"absolute_path": tiny_checkpoint})
    assert not _form("compute_concepts", coco128, **params)["checkpoint"].invalid
    monkeypatch.setattr(fo.config, "database_uri", "mongodb://team-server:27017")
    shared = _form("compute_concepts", coco128, **params)["checkpoint"]
    assert shared.invalid and "This App's database is shared" in shared.error_message
    assert "INFICOND_SERVER_DIRS" in shared.error_message


def test_a_chosen_checkpoint_and_a_shipped_corpus_compute_concepts(coco_subset, tiny_checkpoint):
    result = _execute("compute_concepts", coco_subset, model=TINY_MODEL, pretrained="checkpoint file",
                      checkpoint={"absolute_path": tiny_checkpoint}, corpus_source="world", batch_size=8)
    assert result["computed"] == 12
    config = coco_subset._dataset.get_run_info("concepts").config
    assert config.pretrained == tiny_checkpoint and len(config.concepts) == 40


def test_concepts_without_weights_say_they_mean_nothing_in_the_answer(coco_subset):
    result = _execute("compute_concepts", coco_subset, model=TINY_MODEL, corpus_source="world", batch_size=8)
    assert result["message"].startswith("Concept vectors of 12 samples written to **concepts**. Without weights "
                                        "these concepts mean nothing")


def test_more_shards_than_samples_are_refused_in_the_form(coco128):
    shards = _form("compute_concepts", coco128, num_shards=129)["num_shards"]
    assert shards.invalid and shards.error_message == ("The number of shards for these 128 samples must be a whole "
                                                       "number from 1 to 64; got 129")
    assert not _form("compute_concepts", coco128, num_shards=64)["num_shards"].invalid


def test_the_teacher_form_offers_the_label_fields_and_answers_what_it_wrote(coco128):
    coco128.clone_sample_field("ground_truth", "predictions")
    coco128.add_sample_field("notes", fo.StringField)
    form = _form("import_teacher_scores", coco128, source="labels")
    assert set(_choices(form["label_field"])) == {"ground_truth", "predictions"}
    missing = _form("import_teacher_scores", coco128, source="file", path={"absolute_path": f"{COCO128}/nope.json"})
    assert missing["path"].invalid and "There is no file" in missing["path"].error_message
    result = _execute("import_teacher_scores", coco128, source="labels", label_field="predictions")
    assert result["message"] == ("Teacher scores of 128 samples written to **teacher** (a label field of a "
                                 "model's predictions): train students on them next")


def test_the_train_form_offers_the_runs_fields_and_tags_the_dataset_has(distilled):
    distilled.take(100, seed=0).tag_samples("train")
    form = _form("train_students", distilled)
    assert _choices(form["concepts_field"]) == ["concepts"] and _choices(form["teacher_field"]) == ["teacher"]
    assert _choices(form["gt_field"]) == ["(none)", "ground_truth"] and form["gt_field"].default == "ground_truth"
    assert _choices(form["train_tag"]) == ["(none)", "train"] and form["train_tag"].default == "(none)"


def test_the_train_form_says_what_is_missing_on_a_raw_dataset(coco128):
    form = _form("train_students", coco128)
    assert "concepts_field" not in form and "concepts_field_missing" in form
    assert form["teacher_field_missing"].view.description == "Import teacher scores first"


def test_choosing_none_trains_without_ground_truth_on_every_sample(distilled):
    _execute("train_students", distilled, key="plain", gt_field="(none)", train_tag="(none)", epochs=1, budget=8)
    config = distilled.get_run_info("plain").config
    assert config.gt_field is None and config.train_tag is None and config.n_train == 128


def test_one_action_opens_the_workspace_on_a_raw_dataset_and_saves_it_for_the_workspace_menu():
    from fiftyone.operators.executor import Executor

    dataset = fo.Dataset()  # a user's own: no workspace yet
    try:
        executor = Executor()
        ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {}}, executor=executor)
        answer = foo.get_operator(f"{PLUGIN}/open_workspace").execute(ctx)
        assert dataset.list_workspaces() == ["inficond"] and "saved on **" in answer["message"]
        (shown,) = [r["params"]["spaces"] for r in executor.to_json()["requests"] if r["operator_uri"] == "set_spaces"]
        tabs = [panel["type"] for panel in shown["children"][0]["children"]]
        assert tabs[0] == "inficond_performance" and "inficond_concept" in tabs  # the detail is a tab there
        # the train form offers it, on by default
        assert _form("train_students", dataset)["open_workspace"].default is True
    finally:
        dataset.delete()


def test_a_teacher_field_that_holds_scores_is_refused_in_the_form_until_overwrite_is_ticked(coco128):
    field = "form_teacher"
    _execute("import_teacher_scores", coco128, source="file", path=f"{COCO128}/teacher_yolox_nano.json",
             field=field)
    try:
        refused = _form("import_teacher_scores", coco128, source="labels", field=field)["field"]
        assert refused.invalid and f"Field '{field}' already holds teacher scores" in refused.error_message
        assert not _form("import_teacher_scores", coco128, source="labels", field=field,
                         overwrite=True)["field"].invalid
        taken = _form("import_teacher_scores", coco128, source="labels", field="filepath")["field"]
        assert taken.invalid and "holds data that is not teacher scores" in taken.error_message
    finally:
        delete_run(coco128, field)


@pytest.mark.parametrize("params, refused", [
    (dict(model="hf-hub:timm/ViT-B-16-SigLIP"), "does not download models"),
    (dict(model="local-dir:/etc"), "outside the folders this App may read"),
    (dict(model="no-such-model"), "is not one of open_clip's models"),
    (dict(model=TINY_MODEL, pretrained="secret.PT"), "'secret.PT' is outside the folders"),  # not a tag: a file
])
def test_an_app_user_cannot_name_a_model_or_weights_the_server_would_fetch_or_read_unconfined(coco_subset, params,
                                                                                               refused):
    with pytest.raises(ExecutionError, match=re.escape(refused)):  # refused before anything is loaded
        foo.execute_operator(f"{PLUGIN}/compute_concepts", ctx=dict(view=coco_subset.view(), params=params))
