"""The "naive path" baseline: GhostNet written the way the official repository writes it.

Same module tree and weights as ghostexport's model (so one state dict drives both), but
the forward passes of the original code: the Ghost module always slices its output, the SE
gate is ``relu6(x + 3) / 6`` (three nodes), BatchNorm is left to the exporter, and the head
flattens with ``x.view(x.size(0), -1)``. Written here for measurement only.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from ghostexport.model.arch.ghostnet import GhostModule, GhostNet, SqueezeExcite


def _ghost_forward(self: GhostModule, x: torch.Tensor) -> torch.Tensor:
    x1 = self.primary_conv(x)
    x2 = self.cheap_operation(x1)
    out = torch.cat([x1, x2], dim=1)
    return out[:, : self.out_channels, :, :]


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


def _se_forward(self: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    x_se = self.conv_expand(self.act1(self.conv_reduce(self.avg_pool(x))))
    return x * _hard_sigmoid(x_se)


def _net_forward(self: GhostNet, x: torch.Tensor) -> torch.Tensor:
    x = self.act1(self.bn1(self.conv_stem(x)))
    x = self.blocks(x)
    x = self.act2(self.conv_head(self.global_pool(x)))
    x = x.view(x.size(0), -1)
    if self.drop_rate > 0.0:
        x = F.dropout(x, p=self.drop_rate, training=self.training)
    return self.classifier(x)


def official_style(model: GhostNet) -> nn.Module:
    """Rebind ``model``'s forwards (in place) to the official code's formulation."""
    for module in model.modules():
        if isinstance(module, GhostModule):
            module.forward = types.MethodType(_ghost_forward, module)
        elif isinstance(module, SqueezeExcite):
            module.forward = types.MethodType(_se_forward, module)
    model.forward = types.MethodType(_net_forward, model)
    return model
