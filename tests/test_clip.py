import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY_MODEL

from fiftyone_inficond.clip import encode_texts, load_clip


def test_local_checkpoint_loads_through_pretrained(tiny_checkpoint):
    saved = torch.load(tiny_checkpoint)
    loaded = load_clip(TINY_MODEL, tiny_checkpoint, device="cpu").model.state_dict()
    assert all(torch.equal(saved[name], loaded[name]) for name in saved)


def test_random_initialisation_is_the_same_in_every_load():
    first = load_clip(TINY_MODEL, device="cpu").model.state_dict()
    second = load_clip(TINY_MODEL, device="cpu").model.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="Unknown open_clip model 'ViT-Z-99'.*list_models"):
        load_clip("ViT-Z-99")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="Checkpoint .*nope.pt' not found"):
        load_clip(TINY_MODEL, str(tmp_path / "nope.pt"))


def test_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights")
    with pytest.raises(ValueError, match="is not a checkpoint of open_clip model"):
        load_clip(TINY_MODEL, str(path))


def test_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, path)
    with pytest.raises(ValueError, match="is not a checkpoint of open_clip model"):
        load_clip(TINY_MODEL, str(path))


def test_unavailable_pretrained_tag_says_to_use_a_local_path():
    # huggingface_hub reads HF_HUB_OFFLINE at import: a fresh process fails fast offline.
    code = "from fiftyone_inficond.clip import load_clip; load_clip('ViT-B-32', 'openai')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "RuntimeError: Pretrained weights 'openai' of 'ViT-B-32' could not be loaded" in done.stderr
    assert "pass its local path as pretrained" in done.stderr


def test_concept_text_encoding_matches_open_clip(tiny_checkpoint):
    clip = load_clip(TINY_MODEL, tiny_checkpoint, device="cpu")
    texts = ["a photo of wine cellar (bottle storage).", "a photo of red.", "x"]
    with torch.no_grad():
        expected = torch.nn.functional.normalize(clip.model.encode_text(clip.tokenizer(texts)), dim=-1)
    assert torch.allclose(encode_texts(clip, texts), expected, atol=1e-5)
