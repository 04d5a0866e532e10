"""Model definitions, one module per architecture family, and the variant registry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .ghostnet import GhostNet, GhostNetConfig
from .ghostnetv3 import GhostNetV3

#: variant name -> factory(width, num_classes) building the float training-form model.
VARIANTS: dict[str, Callable[[float, int], nn.Module]] = {
    "ghostnet": lambda width, num_classes: GhostNet(GhostNetConfig(width, num_classes)),
    "ghostnetv2": lambda width, num_classes: GhostNet(GhostNetConfig(width, num_classes, version=2)),
    "ghostnetv3": lambda width, num_classes: GhostNetV3(GhostNetConfig(width, num_classes, version=3)),
}


def create_model(variant: str, width: float, num_classes: int, seed: int) -> nn.Module:
    """Build ``variant`` with seeded random weights (eval mode).

    The weights are not PyTorch's defaults: convs get He (fan-out) init and every
    BatchNorm gets random affine parameters and running statistics. With default BN
    statistics (mean 0, var 1) folding BN is nearly the identity, so a parity gate on such
    a model could not catch a folding bug; these weights also keep logits at a realistic
    scale instead of shrinking towards zero through sixteen blocks.
    """
    torch.manual_seed(seed)
    model = VARIANTS[variant](width, num_classes)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.01, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.01, generator=generator)
                module.bias.zero_()
        if hasattr(model, "balance_branches"):
            model.balance_branches()
    return model.eval()


__all__ = ["VARIANTS", "GhostNet", "GhostNetConfig", "GhostNetV3", "create_model"]
