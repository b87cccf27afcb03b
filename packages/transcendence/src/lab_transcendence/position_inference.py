"""An inference copy of the position policy for the arena: batch norm folded into the convolutions.

In eval mode a batch norm is an affine map per channel, so `bn(conv(x))` is one convolution with scaled
weights and a bias: the copy runs 13 convolutions instead of 13 convolutions + 13 batch norms (no extra
pass over the activations), in channels-last layout (what oneDNN's convolutions want, so no reorders
between layers). The trained model is left untouched; the copy's logits equal its logits to float
rounding (checked in the tests). Transformer bodies have no batch norm and are used as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    out = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        out.weight.copy_(conv.weight * scale[:, None, None, None])
        out.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return out.to(conv.weight.device, conv.weight.dtype)


@torch.no_grad()
def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of a PositionPolicy with every conv + batch norm pair folded into one conv."""
    m = copy.deepcopy(model).eval()
    if getattr(m.config, "arch", None) != "cnn":
        return m
    m.stem[0] = _fold(m.stem[0], m.stem[1])
    m.stem[1] = nn.Identity()
    for block in m.body:
        block.c1, block.b1 = _fold(block.c1, block.b1), nn.Identity()
        block.c2, block.b2 = _fold(block.c2, block.b2), nn.Identity()
    m.stem.to(memory_format=torch.channels_last)
    m.body.to(memory_format=torch.channels_last)
    for p in m.parameters():
        p.requires_grad_(False)
    return m
