"""GhostNet v1 (Han et al., arXiv 1911.11907) and v2 (DFC attention, arXiv 2211.12905)
as a config table driving a module tree.

The module tree and attribute names follow the official PyTorch code and timm exactly, so
their checkpoints load with ``strict=True``. Two deliberate differences in *how* the
forward pass is written (not in what it computes) keep the exported ONNX graph clean:

* a Ghost module only slices its concatenated output when ``ceil(out/2) * 2 != out``;
  the official code always slices, which leaves a no-op ``Slice`` per module in ONNX;
* flatten uses ``torch.flatten`` (one ``Flatten`` node) instead of ``view(x.size(0), -1)``
  (a Shape/Gather/Unsqueeze/Concat/Reshape chain), and the SE gate uses
  ``F.hardsigmoid`` (one ``HardSigmoid`` node) instead of ``relu6(x + 3) / 6``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ghostexport.model.ghost.module import GhostModule, dfc_branch

# (dw kernel, expansion, out channels, SE ratio, stride) per block, grouped by stage.
GHOSTNET_V1_STAGES: tuple[tuple[tuple[int, int, int, float, int], ...], ...] = (
    ((3, 16, 16, 0, 1),),
    ((3, 48, 24, 0, 2),),
    ((3, 72, 24, 0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0, 2),),
    (
        (3, 200, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
    ),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)),
)
HEAD_CHANNELS = 1280
STEM_CHANNELS = 16
FINAL_CHANNELS = 960


def make_divisible(value: float, divisor: int = 4) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), never losing >10%.

    This is the rule the official code and timm use for every channel count, so widths
    other than 1.0 produce the same shapes as their checkpoints.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def shortcut(in_chs: int, out_chs: int, dw_kernel_size: int, stride: int) -> nn.Sequential:
    """Identity when shapes agree, else depthwise k×k (stride) + BN + 1×1 + BN."""
    if in_chs == out_chs and stride == 1:
        return nn.Sequential()
    pad = (dw_kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_chs, in_chs, dw_kernel_size, stride, pad, groups=in_chs, bias=False),
        nn.BatchNorm2d(in_chs),
        nn.Conv2d(in_chs, out_chs, 1, 1, 0, bias=False),
        nn.BatchNorm2d(out_chs),
    )


class SqueezeExcite(nn.Module):
    """Channel attention with a hard-sigmoid gate; keys ``conv_reduce``/``conv_expand``."""

    def __init__(self, channels: int, se_ratio: float = 0.25, divisor: int = 4) -> None:
        super().__init__()
        reduced = make_divisible(channels * se_ratio, divisor)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)  # exports as GlobalAveragePool
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.avg_pool(x)
        gate = self.conv_expand(self.act1(self.conv_reduce(gate)))
        return x * F.hardsigmoid(gate)


def ghost_module(in_chs: int, out_chs: int, relu: bool, attn: bool = False) -> GhostModule:
    """A GhostNet block's Ghost module: 1×1 primary conv, 3×3 cheap conv, both with BN (and ReLU in ghost1)."""
    return GhostModule(in_chs, out_chs, relu=relu, attention=dfc_branch(in_chs, out_chs) if attn else None)


class GhostBottleneck(nn.Module):
    """ghost1 (ReLU) -> [dw conv if stride 2] -> [SE] -> ghost2 (linear) + shortcut."""

    conv_bn_pairs = (("conv_dw", "bn_dw"),)

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        dw_kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
        attn: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.ghost1 = ghost_module(in_chs, mid_chs, relu=True, attn=attn)
        if stride > 1:
            pad = (dw_kernel_size - 1) // 2
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride, pad, groups=mid_chs, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        else:
            self.conv_dw = None
            self.bn_dw = None
        self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio > 0 else None
        self.ghost2 = ghost_module(mid_chs, out_chs, relu=False)
        self.shortcut = shortcut(in_chs, out_chs, dw_kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)
        if self.conv_dw is not None:
            out = self.bn_dw(self.conv_dw(out))
        if self.se is not None:
            out = self.se(out)
        out = self.ghost2(out)
        return out + self.shortcut(x)


class ConvBnAct(nn.Module):
    """1x1 conv + BN + ReLU after the last stage; keys ``conv``/``bn1`` as upstream."""

    conv_bn_pairs = (("conv", "bn1"),)

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))


@dataclass(frozen=True)
class GhostNetConfig:
    width: float = 1.0
    num_classes: int = 1000
    drop_rate: float = 0.2
    version: int = 1  # 2 and 3: DFC attention in ghost1 of every block after the second

    def __post_init__(self) -> None:
        if not (self.width > 0 and math.isfinite(self.width)):
            raise ValueError(f"width must be a positive number, got {self.width}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")


class GhostNet(nn.Module):
    """GhostNet v1: stem -> 9 stages of Ghost bottlenecks -> 1x1 conv -> pooled 1280 head."""

    conv_bn_pairs = (("conv_stem", "bn1"),)

    def __init__(self, config: GhostNetConfig = GhostNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.drop_rate = config.drop_rate
        width = config.width

        stem_chs = make_divisible(STEM_CHANNELS * width, 4)
        self.conv_stem = nn.Conv2d(3, stem_chs, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        self.act1 = nn.ReLU(inplace=True)

        stages: list[nn.Module] = []
        in_chs = stem_chs
        layer_id = 0
        for stage in GHOSTNET_V1_STAGES:
            blocks = []
            for kernel, expansion, out, se_ratio, stride in stage:
                out_chs = make_divisible(out * width, 4)
                mid_chs = make_divisible(expansion * width, 4)
                attn = config.version >= 2 and layer_id > 1
                blocks.append(self.make_block(in_chs, mid_chs, out_chs, kernel, stride, se_ratio, attn))
                in_chs = out_chs
                layer_id += 1
            stages.append(nn.Sequential(*blocks))
        final_chs = make_divisible(FINAL_CHANNELS * width, 4)
        stages.append(nn.Sequential(ConvBnAct(in_chs, final_chs)))
        self.blocks = nn.Sequential(*stages)

        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(final_chs, HEAD_CHANNELS, 1, 1, 0, bias=True)
        self.act2 = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(HEAD_CHANNELS, config.num_classes)

    def make_block(self, in_chs, mid_chs, out_chs, kernel, stride, se_ratio, attn) -> nn.Module:
        """One bottleneck; GhostNetV3 overrides this with its re-parameterisable block."""
        return GhostBottleneck(in_chs, mid_chs, out_chs, kernel, stride, se_ratio, attn)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (fine-tuning on another label set)."""
        self.num_classes = num_classes
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.act2(self.conv_head(self.global_pool(x)))
        x = torch.flatten(x, 1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)
