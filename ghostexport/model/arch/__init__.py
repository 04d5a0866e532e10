"""Model definitions, one module per architecture family, and the variant registry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ghostexport.model.arch.ghostnet import GhostNet, GhostNetConfig
from ghostexport.model.arch.ghostnetv3 import GhostNetV3

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


#: images in the statistics pass: enough for stable statistics, few enough to cost < 1 s at 224²
BN_STATISTICS_SAMPLES = 16
#: keep the pass's pixel count at or below 16 images at 224² (large resolutions use fewer images)
BN_STATISTICS_PIXELS = 16 * 224 * 224


def bn_statistics_samples(resolution: int) -> int:
    return max(2, min(BN_STATISTICS_SAMPLES, BN_STATISTICS_PIXELS // (resolution * resolution)))


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, resolution: int, seed: int) -> dict:
    """Set every BatchNorm's running statistics from one train-mode pass over random images.

    A randomly initialised network with arbitrary BN statistics answers nearly the same for
    every input (measured at 0.5× and 64²: the logits' spread across samples is 0.3–7% of
    their spread overall, one top-1 class for all). Parity figures on such a model cannot
    tell a correct export from one that computes on a negated or channel-swapped image.
    After this pass every layer sees normalised activations, the answer follows the input
    (spread ≈ 50%, distinct top-1 classes) and the gates become discriminative. The pass is
    seeded, so ``check`` rebuilds the same model from the manifest's record of it.
    """
    samples = bn_statistics_samples(resolution)
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta = [module.momentum for module in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # a plain average over the pass, not an exponential one
    generator = torch.Generator().manual_seed(seed + 1)
    images = torch.randn(samples, 3, resolution, resolution, generator=generator)
    model.train()
    try:
        model(images)
    finally:
        for module, momentum in zip(norms, momenta, strict=True):
            module.momentum = momentum
        model.eval()
    return {
        "method": "one train-mode pass, running statistics = batch statistics",
        "inputs": f"{samples} standard-normal images at {resolution}², seed {seed + 1}",
        "samples": samples,
        "layers": len(norms),
    }


__all__ = [
    "VARIANTS",
    "GhostNet",
    "GhostNetConfig",
    "GhostNetV3",
    "bn_statistics_samples",
    "calibrate_batchnorm",
    "create_model",
]
