"""Zero-padded channel layouts that keep ONNX Runtime on its NCHWc kernels (GhostNet v1).

ORT's CPU provider runs convolutions in a blocked NCHWc layout (block 16 with AVX-512, 8
with AVX2) and chains them without conversion only when channel counts are multiples of the
block. Each Ghost module concatenates two halves whose sizes (8, 12, 20, 36, 60, …) mostly
are not, so ORT reorders every module's output back to NCHW and forth again — a quarter of
the fp32 kernel time (benchmarks/README.md).

This pass rewrites the BN-folded PyTorch model so that every half is padded with zero
channels up to the block size: each conv gets zero rows/columns (and zero bias) at the
padded positions, and every consumer reads the padded layout. Padded channels stay exactly
zero through ReLU, depthwise convs, the SE gate (hard-sigmoid(0)·0 = 0) and residual adds, so
the function is unchanged; the parity gate checks that like any other export.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ghostexport.model.arch.ghostnet import ConvBnAct, GhostBottleneck, GhostModule, GhostNet, SqueezeExcite

Layout = tuple[list[int], int]  # physical position of each logical channel, physical width


def _round_up(value: int, block: int) -> int:
    return math.ceil(value / block) * block


def identity_layout(channels: int, block: int) -> Layout:
    return list(range(channels)), _round_up(channels, block)


def ghost_layout(channels: int, block: int) -> Layout:
    """[primary half | zeros | cheap half | zeros], each half padded to the block."""
    half = math.ceil(channels / 2)
    padded = _round_up(half, block)
    return list(range(half)) + [padded + i for i in range(channels - half)], 2 * padded


@torch.no_grad()
def _remap(conv: nn.Conv2d, layout_in: Layout, layout_out: Layout) -> nn.Conv2d:
    """A conv reading ``layout_in`` and writing ``layout_out``, zero everywhere else."""
    (pos_in, width_in), (pos_out, width_out) = layout_in, layout_out
    depthwise = conv.groups == conv.in_channels and conv.groups > 1
    if depthwise and pos_in != pos_out:
        raise ValueError("a depthwise conv keeps its channel layout")
    groups = width_in if depthwise else conv.groups
    if groups not in (1, width_in):
        raise ValueError(f"cannot remap a grouped conv with groups={conv.groups}")
    remapped = nn.Conv2d(width_in, width_out, conv.kernel_size, conv.stride, conv.padding, groups=groups, bias=True)
    remapped.weight.zero_()
    remapped.bias.zero_()
    out_index = torch.tensor(pos_out)
    if depthwise:
        remapped.weight[out_index] = conv.weight
    else:
        in_index = torch.tensor(pos_in)
        remapped.weight[out_index.unsqueeze(1), in_index.unsqueeze(0)] = conv.weight
    if conv.bias is not None:
        remapped.bias[out_index] = conv.bias
    return remapped


def _ghost(module: GhostModule, layout_in: Layout, block: int) -> Layout:
    half = module.primary_conv[0].out_channels
    primary = identity_layout(half, block)
    module.primary_conv[0] = _remap(module.primary_conv[0], layout_in, primary)
    module.cheap_operation[0] = _remap(module.cheap_operation[0], primary, primary)
    layout = ghost_layout(module.out_channels, block)
    module.out_channels = layout[1]  # the concat is now the padded width: no slicing
    module.trim = False
    return layout


def _se(module: SqueezeExcite, layout: Layout) -> None:
    reduced = (list(range(module.conv_reduce.out_channels)), module.conv_reduce.out_channels)
    module.conv_reduce = _remap(module.conv_reduce, layout, reduced)
    module.conv_expand = _remap(module.conv_expand, reduced, layout)


def _bottleneck(block_module: GhostBottleneck, layout_in: Layout, block: int) -> Layout:
    mid = _ghost(block_module.ghost1, layout_in, block)
    if block_module.conv_dw is not None:
        block_module.conv_dw = _remap(block_module.conv_dw, mid, mid)
    if block_module.se is not None:
        _se(block_module.se, mid)
    out = _ghost(block_module.ghost2, mid, block)
    if len(block_module.shortcut):
        depthwise, pointwise = block_module.shortcut[0], block_module.shortcut[2]
        block_module.shortcut[0] = _remap(depthwise, layout_in, layout_in)
        block_module.shortcut[2] = _remap(pointwise, layout_in, out)
    elif layout_in != out:
        raise ValueError("identity shortcut between different layouts")
    return out


def can_align(model: nn.Module) -> bool:
    """Only GhostNet v1 (no DFC attention, no re-parameterisable branches) is handled."""
    return type(model) is GhostNet and not any(
        getattr(m, "short_conv", None) is not None for m in model.modules() if isinstance(m, GhostModule)
    )


def align_channels(deploy: GhostNet, block: int = 16) -> GhostNet:
    """A copy of a BN-folded GhostNet v1 with every Ghost half zero-padded to ``block`` channels."""
    if not can_align(deploy):
        raise ValueError("channel alignment handles GhostNet v1 only")
    model = copy.deepcopy(deploy).eval()
    layout = ghost_layout(model.conv_stem.out_channels, block)
    model.conv_stem = _remap(model.conv_stem, identity_layout(3, 1), layout)
    for stage in model.blocks:
        for module in stage:
            if isinstance(module, GhostBottleneck):
                layout = _bottleneck(module, layout, block)
            elif isinstance(module, ConvBnAct):
                final = identity_layout(module.conv.out_channels, block)
                module.conv = _remap(module.conv, layout, final)
                layout = final
    model.conv_head = _remap(model.conv_head, layout, identity_layout(model.conv_head.out_channels, 1))
    return model
