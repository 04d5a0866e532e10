"""GhostNetV3 (arXiv 2404.11202): re-parameterisable training branches, fused for deployment.

In its training form every Ghost module sums three parallel conv+BN branches (plus, for the
cheap depthwise operation, a 1×1 "scale" branch and a BN "skip" branch), and so does each
stride-2 depthwise conv. ``reparameterize()`` folds every branch into one biased conv —
kernels padded to a common size and added — giving exactly GhostNetV2's deploy structure
(same MACs), which is what gets exported. Module names follow timm, so its checkpoints load
with ``strict=True`` in the training form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ghostexport.model.arch.ghostnet import GhostNet, GhostNetConfig, SqueezeExcite, shortcut
from ghostexport.model.ghost.module import apply_dfc, dfc_branch

NUM_BRANCHES = 3


class ConvBn(nn.Module):
    """conv + BN without activation; keys ``conv``/``bn1`` as timm's."""

    conv_bn_pairs = (("conv", "bn1"),)

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv(x))


def _fold(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


def _branch(branch: ConvBn, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A conv+BN branch as (kernel padded to ``size``, bias)."""
    kernel, bias = _fold(branch.conv.weight, branch.bn1)
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad] * 4), bias


def _skip(bn: nn.BatchNorm2d, channels: int, in_per_group: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A BN-only identity branch as a conv kernel (1 at the centre of each channel's own input)."""
    identity = torch.zeros(channels, in_per_group, size, size, dtype=bn.weight.dtype)
    for channel in range(channels):
        identity[channel, channel % in_per_group, size // 2, size // 2] = 1.0
    return _fold(identity, bn)


def _fused_conv(template: nn.Conv2d, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> nn.Conv2d:
    fused = nn.Conv2d(
        template.in_channels,
        template.out_channels,
        template.kernel_size,
        template.stride,
        template.padding,
        groups=template.groups,
        bias=True,
    )
    with torch.no_grad():
        fused.weight.copy_(sum(kernel for kernel, _ in parts))
        fused.bias.copy_(sum(bias for _, bias in parts))
    return fused


class GhostModuleV3(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, relu: bool = True, dw_size: int = 3, attn: bool = False) -> None:
        super().__init__()
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / 2)
        new_chs = init_chs
        self.needs_trim = init_chs + new_chs != out_chs
        self.primary_rpr_conv = nn.ModuleList(ConvBn(in_chs, init_chs, 1) for _ in range(NUM_BRANCHES))
        self.cheap_rpr_skip = nn.BatchNorm2d(init_chs)
        self.cheap_rpr_conv = nn.ModuleList(
            ConvBn(init_chs, new_chs, dw_size, groups=init_chs) for _ in range(NUM_BRANCHES)
        )
        self.cheap_rpr_scale = ConvBn(init_chs, new_chs, 1, groups=init_chs)
        self.short_conv = dfc_branch(in_chs, out_chs) if attn else None
        # two activation modules (as timm), so each call has its own scope in the exported graph
        self.primary_activation = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.cheap_activation = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.dw_size = dw_size
        self.primary_conv: nn.Conv2d | None = None  # set by reparameterize()
        self.cheap_operation: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.primary_conv is not None:
            x1 = self.primary_activation(self.primary_conv(x))
            x2 = self.cheap_activation(self.cheap_operation(x1))
        else:
            x1 = self.primary_activation(sum(branch(x) for branch in self.primary_rpr_conv))
            x2 = self.cheap_rpr_skip(x1) + self.cheap_rpr_scale(x1) + sum(branch(x1) for branch in self.cheap_rpr_conv)
            x2 = self.cheap_activation(x2)
        out = torch.cat([x1, x2], dim=1)
        out = out[:, : self.out_chs] if self.needs_trim else out
        return out if self.short_conv is None else apply_dfc(self.short_conv, x, out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        template = self.primary_rpr_conv[0].conv
        self.primary_conv = _fused_conv(template, [_branch(b, 1) for b in self.primary_rpr_conv])
        size = self.dw_size
        cheap = [_branch(b, size) for b in self.cheap_rpr_conv] + [_branch(self.cheap_rpr_scale, size)]
        cheap.append(_skip(self.cheap_rpr_skip, self.cheap_rpr_skip.num_features, 1, size))
        self.cheap_operation = _fused_conv(self.cheap_rpr_conv[0].conv, cheap)
        del self.primary_rpr_conv, self.cheap_rpr_skip, self.cheap_rpr_conv, self.cheap_rpr_scale


class GhostBottleneckV3(nn.Module):
    def __init__(self, in_chs, mid_chs, out_chs, dw_kernel_size=3, stride=1, se_ratio=0.0, attn=False) -> None:
        super().__init__()
        self.stride = stride
        self.ghost1 = GhostModuleV3(in_chs, mid_chs, relu=True, attn=attn)
        self.dw_kernel_size = dw_kernel_size
        if stride > 1:
            self.dw_rpr_conv = nn.ModuleList(
                ConvBn(mid_chs, mid_chs, dw_kernel_size, stride, groups=mid_chs) for _ in range(NUM_BRANCHES)
            )
            self.dw_rpr_scale = ConvBn(mid_chs, mid_chs, 1, stride, groups=mid_chs)
        else:
            self.dw_rpr_conv = None
            self.dw_rpr_scale = None
        self.conv_dw: nn.Conv2d | None = None  # set by reparameterize()
        self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio > 0 else None
        self.ghost2 = GhostModuleV3(mid_chs, out_chs, relu=False)
        self.shortcut = shortcut(in_chs, out_chs, dw_kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)
        if self.conv_dw is not None:
            out = self.conv_dw(out)
        elif self.dw_rpr_conv is not None:
            out = self.dw_rpr_scale(out) + sum(branch(out) for branch in self.dw_rpr_conv)
        if self.se is not None:
            out = self.se(out)
        return self.ghost2(out) + self.shortcut(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        self.ghost1.reparameterize()
        self.ghost2.reparameterize()
        if self.dw_rpr_conv is not None:
            size = self.dw_kernel_size
            parts = [_branch(b, size) for b in self.dw_rpr_conv] + [_branch(self.dw_rpr_scale, size)]
            self.conv_dw = _fused_conv(self.dw_rpr_conv[0].conv, parts)
            self.dw_rpr_conv = None
            self.dw_rpr_scale = None


class GhostNetV3(GhostNet):
    """GhostNet's stem and head around re-parameterisable V3 bottlenecks (DFC as in V2)."""

    def __init__(self, config: GhostNetConfig | None = None) -> None:
        super().__init__(config or GhostNetConfig(version=3))

    def make_block(self, in_chs, mid_chs, out_chs, kernel, stride, se_ratio, attn) -> nn.Module:
        return GhostBottleneckV3(in_chs, mid_chs, out_chs, kernel, stride, se_ratio, attn)

    @torch.no_grad()
    def balance_branches(self) -> None:
        """Scale each summed branch's BN by 1/(number of terms) after a random init.

        Without it, summing 3–5 independently initialised branches per layer multiplies the
        activation scale at every Ghost module and random-init logits overflow towards 1e9.
        """
        for module in self.modules():
            groups = []
            if isinstance(module, GhostModuleV3) and module.primary_conv is None:
                groups = [
                    [b.bn1 for b in module.primary_rpr_conv],
                    [b.bn1 for b in module.cheap_rpr_conv] + [module.cheap_rpr_scale.bn1, module.cheap_rpr_skip],
                ]
            elif isinstance(module, GhostBottleneckV3) and module.dw_rpr_conv is not None:
                groups = [[b.bn1 for b in module.dw_rpr_conv] + [module.dw_rpr_scale.bn1]]
            for group in groups:
                for bn in group:
                    bn.weight.div_(len(group))
                    bn.bias.div_(len(group))

    @torch.no_grad()
    def reparameterize(self) -> GhostNetV3:
        """Fuse every training branch in place (eval-mode statistics); returns self."""
        for module in self.modules():
            if isinstance(module, GhostBottleneckV3):
                module.reparameterize()
        return self
