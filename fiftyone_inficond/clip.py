"""Loading open_clip models and encoding concept text, with errors that say what to do."""

import importlib.resources
import logging
import os
from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool

from fiftyone_inficond.corpus import DEFAULT_TEMPLATE
from fiftyone_inficond.errors import InvalidRequest, MissingFile

logger = logging.getLogger(__name__)

# Model configs shipped with this package (e.g. the tiny test ViT) are registered the way
# open_clip registers its own, so they load by name in any process that imports this module.
open_clip.add_model_config(importlib.resources.files("fiftyone_inficond") / "model_configs")


@dataclass
class ClipModel:
    """An open_clip model with its image preprocessing and tokenizer."""

    model: torch.nn.Module
    preprocess: object
    tokenizer: object
    name: str
    pretrained: str = None

    @property
    def device(self):
        return next(self.model.parameters()).device


def model_names():
    """The open_clip models that load by name here, this package's small ones included, sorted."""
    return sorted(open_clip.list_models())


def pretrained_tags(model_name):
    """The pretrained tags open_clip knows for ``model_name`` (none for an unknown model)."""
    return open_clip.list_pretrained_tags_by_model(model_name) if model_name in open_clip.list_models() else []


def _check_model_name(model_name):
    if model_name.startswith(("hf-hub:", "local-dir:")):
        return
    if model_name.replace("/", "-") not in open_clip.list_models():
        known = ", ".join(sorted(open_clip.list_models())[:8])
        raise InvalidRequest(
            f"Unknown open_clip model '{model_name}'. Use a name from "
            f"open_clip.list_models() (e.g. {known}, ...)"
        )


def _check_pretrained(model_name, pretrained):
    """Validates ``pretrained`` as a tag of ``model_name`` or a local checkpoint file."""
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if not pretrained or pretrained in tags:
        return
    if os.path.isdir(pretrained) or not os.path.exists(pretrained):
        raise MissingFile(
            f"Checkpoint '{pretrained}' not found. Give the path of a checkpoint file for "
            f"'{model_name}' or one of its pretrained tags ({', '.join(tags) or 'none known'})"
        )


def load_clip(model_name, pretrained=None, device=None, resize_mode="squash"):
    """Loads an open_clip model exactly as open_clip takes it.

    Args:
        model_name: an open_clip model name (``open_clip.list_models()``), including the
            configs shipped with this package
        pretrained: ``None`` (random initialisation), a pretrained tag of the model, or the
            path of a local checkpoint file
        device: a torch device; defaults to CUDA when available
        resize_mode: open_clip's inference resize mode. ``"squash"`` (default) keeps the
            whole image, so the patch grid covers all of it and maps back onto it;
            ``"shortest"`` centre-crops as CLIP was trained

    Returns:
        a :class:`ClipModel` in eval mode
    """
    _check_model_name(model_name)
    _check_pretrained(model_name, pretrained)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        # A fixed seed makes a random initialisation the same model in every process, so
        # runs without weights stay resumable and comparable.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device, image_resize_mode=resize_mode
            )
    except Exception as e:
        if pretrained and os.path.isfile(pretrained):
            raise InvalidRequest(
                f"'{pretrained}' is not a checkpoint of open_clip model '{model_name}': {e}"
            ) from e
        if pretrained:
            raise RuntimeError(
                f"Pretrained weights '{pretrained}' of '{model_name}' could not be loaded "
                f"(this machine may be offline): download the checkpoint elsewhere and pass "
                f"its local path as pretrained. Cause: {e}"
            ) from e
        raise
    if not pretrained:
        logger.warning(
            "open_clip model '%s' has no pretrained weights: it is randomly initialised "
            "(seed 0) and its concepts carry no meaning",
            model_name,
        )
    model.eval()
    return ClipModel(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer_of(model_name),
        name=model_name,
        pretrained=pretrained,
    )


def encode_text_tokens(model, tokens):
    """``CLIP.encode_text``, unnormalized and differentiable, on the tokens up to the longest text.

    Text attention is causal and pooling reads the end-of-text token, so the padding after
    the longest text changes nothing; dropping it makes short concept prompts several times
    cheaper to encode than at the full 77-token context. Models where that does not hold
    encode the full context.
    """
    if not _can_truncate(model):
        return model.encode_text(tokens)
    length = int((tokens != 0).sum(dim=1).max())
    x = model.token_embedding(tokens[:, :length]) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens[:, :length], model.text_pool_type)
    return x @ model.text_projection


def _can_truncate(model):
    return (
        isinstance(model, open_clip.CLIP)
        and model.attn_mask is not None
        and model.text_pool_type == "argmax"
        and isinstance(model.text_projection, torch.nn.Parameter)
    )


def require_distinct_prompts(tokenizer, names, texts, model_name):
    """Refuses concepts whose prompts (``texts``, one per name) the tokenizer makes the same: it reads
    only the first ``context_length`` tokens (77 for CLIP), so two long concepts that differ after
    them would be identical columns under two names."""
    first_of = {}
    for start in range(0, len(texts), _TOKENIZED_AT_ONCE):
        tokens = tokenizer(list(texts[start : start + _TOKENIZED_AT_ONCE])).numpy()
        for j, row in enumerate(tokens, start):
            first = first_of.setdefault(row.tobytes(), j)
            if first != j:
                length = getattr(tokenizer, "context_length", len(row))
                raise InvalidRequest(
                    f"Concepts '{_shortened(names[first])}' and '{_shortened(names[j])}' read the same to "
                    f"{model_name}, which reads only the first {length} tokens of a prompt: shorten them so "
                    f"that they differ early"
                )


_TOKENIZED_AT_ONCE = 1024


def tokenizer_of(model_name):
    """The tokenizer of open_clip model ``model_name``, without loading the model."""
    return open_clip.get_tokenizer(model_name)


def _shortened(name, length=40):
    return name if len(name) <= length else name[: length - 1] + "…"


@torch.no_grad()
def encode_texts(clip, texts, batch_size=256):
    """L2-normalized text embeddings, shape ``(len(texts), embed_dim)``."""
    chunks = [
        encode_text_tokens(clip.model, clip.tokenizer(list(texts[start : start + batch_size])).to(clip.device)).float()
        for start in range(0, len(texts), batch_size)
    ]
    return F.normalize(torch.cat(chunks), dim=-1)


def encode_concepts(clip, corpus, template=DEFAULT_TEMPLATE):
    """L2-normalized text embeddings of a corpus's prompts, in corpus column order."""
    return encode_texts(clip, corpus.texts(template))
