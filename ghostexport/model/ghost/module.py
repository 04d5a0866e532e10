"""The Ghost module: GhostNet's building block, and a drop-in for any ``nn.Conv2d`` (and, on request, the classifier).

A convolution with n output maps is replaced by a primary convolution (same kernel, stride,
padding and dilation) that makes m = ⌈n/s⌉ "intrinsic" maps, and a cheap d×d depthwise
convolution that makes (s-1) "ghost" maps from each of them; the two are concatenated and
the first n kept (arXiv 1911.11907, section 3.1).

Where the original convolution is followed by a BatchNorm (conv → BN, the usual CNN
pattern), that BatchNorm moves into the module, split in two as in the paper's own Ghost
module: primary conv → BN, cheap conv → BN, then the concatenation. Each conv → BN pair then
folds exactly for deployment, and the concatenated maps are normalised channel by channel;
left outside, the BN would sit after the Concat, could not be folded, and per-tensor int8
would quantize raw maps of very different ranges together (measured on digits: SQNR 13.5 dB
instead of above 20). Without a BatchNorm the module is the two linear operations alone.

Warm start, so fine-tuning begins near the original network: the primary convolution (and
its BatchNorm) take the original's first m filters, so the first m output maps are exactly
the original's; each ghost map is initialised as the least-squares multiple of the original
filter it replaces onto the intrinsic filter it is made from (a·W_src is the closest multiple
of W_src to W_target), at the centre tap of the depthwise kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def dfc_branch(in_chs: int, out_chs: int) -> nn.Sequential:
    """GhostNetV2's DFC attention: 1×1 conv, then decoupled fully-connected 1×5 and 5×1
    depthwise convs, each with BN (keys ``short_conv.0``–``5``, as timm)."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, 1, 1, 0, bias=False),
        nn.BatchNorm2d(out_chs),
        nn.Conv2d(out_chs, out_chs, (1, 5), 1, (0, 2), groups=out_chs, bias=False),
        nn.BatchNorm2d(out_chs),
        nn.Conv2d(out_chs, out_chs, (5, 1), 1, (2, 0), groups=out_chs, bias=False),
        nn.BatchNorm2d(out_chs),
    )


def apply_dfc(short_conv: nn.Module, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Gate ``out`` with the DFC branch computed on ``x`` at half resolution."""
    gate = torch.sigmoid(short_conv(F.avg_pool2d(x, kernel_size=2, stride=2)))
    # static output size (ints, not traced shapes): one Resize node, no Shape/Gather chain for H, W
    size = (int(out.shape[-2]), int(out.shape[-1]))
    return out * F.interpolate(gate, size=size, mode="nearest")


class GhostModule(nn.Module):
    """Primary conv (m = ⌈n/s⌉ maps) + cheap depthwise conv ((s-1)·m maps), concatenated, first n kept.

    The one Ghost module: GhostNet's blocks build it with a 1×1 primary conv, BatchNorms and
    (in ``ghost1``) ReLUs; ``ghostify`` builds it in place of any ``nn.Conv2d``, with that
    conv's kernel, stride, padding and dilation. The attribute names are the official
    code's and timm's (``primary_conv`` and ``cheap_operation``, each conv → BN → activation,
    ``short_conv`` for GhostNetV2's DFC attention), so their checkpoints load strictly, and
    each conv → BN pair is adjacent in its ``nn.Sequential``, so it folds exactly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = False,
        ratio: int = 2,
        dw_size: int = 3,
        batchnorm: bool = True,
        relu: bool = False,
        attention: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.intrinsic = math.ceil(out_channels / ratio)
        ghosts = self.intrinsic * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_channels, self.intrinsic, kernel_size, stride, padding, dilation, bias=bias),
            nn.BatchNorm2d(self.intrinsic) if batchnorm else nn.Identity(),
            nn.ReLU(inplace=True) if relu else nn.Identity(),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(self.intrinsic, ghosts, dw_size, 1, dw_size // 2, groups=self.intrinsic, bias=bias),
            nn.BatchNorm2d(ghosts) if batchnorm else nn.Identity(),
            nn.ReLU(inplace=True) if relu else nn.Identity(),
        )
        #: GhostNetV2's DFC attention gate, computed from the module's input (None: no gate)
        self.short_conv = attention
        # Only slice when the concatenation is longer than wanted: a no-op slice exports as a
        # Slice (or an alias that edge runtimes leave outside their delegates).
        self.trim = self.intrinsic * ratio != out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary_conv(x)
        out = torch.cat([intrinsic, self.cheap_operation(intrinsic)], dim=1)
        out = out[:, : self.out_channels] if self.trim else out
        return out if self.short_conv is None else apply_dfc(self.short_conv, x, out)

    @property
    def primary(self) -> nn.Conv2d:
        return self.primary_conv[0]

    @property
    def cheap(self) -> nn.Conv2d:
        return self.cheap_operation[0]

    @classmethod
    def from_conv(
        cls, conv: nn.Conv2d, ratio: int, dw_size: int, batchnorm: nn.BatchNorm2d | None = None
    ) -> GhostModule:
        """The Ghost module replacing ``conv`` (and the ``batchnorm`` after it), warm-started from its filters."""
        ghost = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            bias=conv.bias is not None,
            ratio=ratio,
            dw_size=dw_size,
            batchnorm=batchnorm is not None,
        ).to(conv.weight.dtype)
        with torch.no_grad():
            _warm_start(ghost, conv, ratio, dw_size, batchnorm)
        return ghost


def _pairs(m: int, n: int, ratio: int):
    """(ghost index, intrinsic source, original target) for every ghost map that stands in for an original map."""
    for ghost_index in range(min(m * (ratio - 1), n - m)):
        yield ghost_index, ghost_index // (ratio - 1), m + ghost_index


def _warm_start(ghost: GhostModule, conv: nn.Conv2d, ratio: int, dw_size: int, bn: nn.BatchNorm2d | None) -> None:
    m, n, centre = ghost.intrinsic, conv.out_channels, dw_size // 2
    weight = conv.weight.detach()
    flat = weight.flatten(1)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(n)
    ghost.primary.weight.copy_(weight[:m])
    if conv.bias is not None:
        ghost.primary.bias.copy_(bias[:m])
        ghost.cheap.bias.zero_()
    ghost.cheap.weight.zero_()
    # what the cheap conv reads is x1 (raw) without a BN, or BN_p(x1) = gain·x1 + offset with one
    gain, offset = torch.ones(m), torch.zeros(m)
    if bn is not None:
        _copy_bn(ghost.primary_conv[1], bn, slice(0, m))
        std = torch.sqrt(bn.running_var[:m] + bn.eps)
        gain = torch.where(bn.weight[:m].abs() > 1e-6, bn.weight[:m] / std, torch.ones(m))
        offset = bn.bias[:m] - gain * bn.running_mean[:m]
    for ghost_index, source, target in _pairs(m, n, ratio):
        energy = flat[source].dot(flat[source])
        scale = flat[target].dot(flat[source]) / energy if energy > 0 else torch.zeros(())
        # ghost ≈ scale·x1_source = (scale/gain)·read − scale·offset/gain, plus the bias difference
        ghost.cheap.weight[ghost_index, 0, centre, centre] = scale / gain[source]
        constant = bias[target] - scale * bias[source] - scale * offset[source] / gain[source]
        if bn is not None:
            _copy_bn(ghost.cheap_operation[1], bn, slice(target, target + 1), ghost_index)
            ghost.cheap_operation[1].running_mean[ghost_index] -= constant
        elif conv.bias is not None:
            ghost.cheap.bias[ghost_index] = constant


def _copy_bn(into: nn.BatchNorm2d, source: nn.BatchNorm2d, channels: slice, at: int = 0) -> None:
    count = channels.stop - channels.start
    into.eps, into.momentum = source.eps, source.momentum
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(into, name)[at : at + count] = getattr(source, name)[channels]


class GhostLinear(nn.Module):
    """The Ghost module on a fully connected layer: a 1×1 convolution on a 1×1 map.

    The primary layer makes m = ⌈n/s⌉ outputs; on a 1×1 map a depthwise kernel reduces to
    its centre tap, so each ghost output is a scaled (and shifted) copy of its intrinsic
    output. Used for the classifier only when asked (``GhostRule.ghost_classifier``): the
    paper's ResNet-50 parameter counts (13.0M at s=2, 6.5M at s=4) are only reached with the
    classifier compressed by s too, but a small classifier (10 classes) loses half its
    independent logits.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, ratio: int = 2) -> None:
        super().__init__()
        self.out_features = out_features
        self.intrinsic = math.ceil(out_features / ratio)
        self.primary = nn.Linear(in_features, self.intrinsic, bias=bias)
        self.ratio = ratio
        self.scale = nn.Parameter(torch.ones(self.intrinsic * (ratio - 1)))
        self.shift = nn.Parameter(torch.zeros(self.intrinsic * (ratio - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary(x)
        ghosts = intrinsic.repeat_interleave(self.ratio - 1, dim=-1) * self.scale + self.shift
        return torch.cat([intrinsic, ghosts], dim=-1)[..., : self.out_features]

    @classmethod
    def from_linear(cls, linear: nn.Linear, ratio: int) -> GhostLinear:
        """Warm-started like ``GhostModule.from_conv``: the first m rows kept, each ghost row a least-squares scale."""
        ghost = cls(linear.in_features, linear.out_features, linear.bias is not None, ratio).to(linear.weight.dtype)
        m, n = ghost.intrinsic, linear.out_features
        with torch.no_grad():
            weight = linear.weight.detach()
            ghost.primary.weight.copy_(weight[:m])
            bias = linear.bias.detach() if linear.bias is not None else torch.zeros(n)
            if linear.bias is not None:
                ghost.primary.bias.copy_(bias[:m])
            for ghost_index, source, target in _pairs(m, n, ratio):
                energy = weight[source].dot(weight[source])
                scale = weight[target].dot(weight[source]) / energy if energy > 0 else torch.zeros(())
                ghost.scale[ghost_index] = scale
                ghost.shift[ghost_index] = bias[target] - scale * bias[source]
        return ghost
