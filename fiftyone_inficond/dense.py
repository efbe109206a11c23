"""Dense patch embeddings in CLIP's joint image-text space.

CLIP's last block mixes every patch with the others through query-key attention, which is
what makes its patch tokens useless for localisation. Following MaskCLIP and ClearCLIP, the
last block is replaced by its value path alone: each patch's own value vector goes through
the attention output projection, with neither the residual nor the feed-forward branch
(ClearCLIP shows both hurt dense alignment), and then through CLIP's final norm and
projection, so every patch lands in the space of the text embeddings.
"""

import torch.nn.functional as F
from open_clip.transformer import Attention, VisionTransformer

from fiftyone_inficond.errors import InvalidRequest


def _visual_tower(model):
    visual = getattr(model, "visual", model)
    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise InvalidRequest(
            f"Dense concept features need an open_clip ViT image tower without attentional "
            f"pooling; this model's is {type(visual).__name__}. Choose a ViT model "
            f"(e.g. ViT-B-16)"
        )
    return visual


def patch_grid(model):
    """The ``(rows, cols)`` patch grid of a model's image tower."""
    return tuple(_visual_tower(model).grid_size)


def _value_path(block, x):
    """The last block's attention reduced to each token's value, projected out."""
    attn = block.attn
    width = x.shape[-1]
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[2 * width :]
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * width :], bias)
    if isinstance(attn, Attention):
        if attn.head_scale is not None:
            heads = v.unflatten(-1, (attn.num_heads, -1)) * attn.head_scale.view(-1, 1)
            v = heads.flatten(-2)
        v = attn.ln_inner(v)
    out = attn.out_proj(v)
    return block.ls_1(getattr(block, "ln_attn", lambda t: t)(out))


def _run_blocks(transformer, blocks, x):
    if not transformer.batch_first:
        x = x.transpose(0, 1)
    for block in blocks:
        x = block(x)
    return x if transformer.batch_first else x.transpose(0, 1)


def _project(visual, tokens):
    return tokens @ visual.proj if visual.proj is not None else tokens


def _trunk(visual, images):
    """Tokens after every block but the last, batch first."""
    return _run_blocks(visual.transformer, visual.transformer.resblocks[:-1], visual._embeds(images))


def _dense_from_trunk(visual, x):
    return _project(visual, visual.ln_post(_value_path(visual.transformer.resblocks[-1], x[:, 1:])))


def dense_patch_embeddings(model, images):
    """Value-path patch embeddings, shape ``(batch, rows * cols, embed_dim)``, unnormalized.

    Differentiable, so the same path serves extraction and training for dense alignment.
    """
    visual = _visual_tower(model)
    return _dense_from_trunk(visual, _trunk(visual, images))


def global_and_dense_embeddings(model, images):
    """``encode_image``'s embedding and the dense patch embeddings from one shared trunk."""
    visual = _visual_tower(model)
    x = _trunk(visual, images)
    last = _run_blocks(visual.transformer, visual.transformer.resblocks[-1:], x)
    pooled, _ = visual._pool(last)
    return _project(visual, pooled), _dense_from_trunk(visual, x)
