"""Fold every BatchNorm into the convolution before it (the deploy form that gets exported).

Folding in PyTorch rather than relying on the exporter or ONNX Runtime makes the exported
graph the same whichever exporter or simplifier is used, and lets the parity gate compare
the folded ONNX against the *unfolded* model, which is the model users trained.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with Conv+BN pairs merged into biased convs.

    Pairs are found in two places: adjacent ``Conv2d``/``BatchNorm2d`` children of an
    ``nn.Sequential``, and the attribute pairs a module lists in ``conv_bn_pairs``.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            for index in range(len(module) - 1):
                conv, bn = module[index], module[index + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module[index] = fuse_conv_bn_eval(conv, bn)
                    module[index + 1] = nn.Identity()
        for conv_name, bn_name in getattr(module, "conv_bn_pairs", ()):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return folded


def reparameterized(model: nn.Module) -> nn.Module:
    """An eval-mode copy with re-parameterisable training branches fused (GhostNetV3);
    a plain copy for models without them."""
    copied = copy.deepcopy(model).eval()
    if hasattr(copied, "reparameterize"):
        copied.reparameterize()
    return copied


def deploy_form(model: nn.Module) -> nn.Module:
    """What gets exported: branches fused, then every BatchNorm folded into its conv."""
    return fold_batchnorm(reparameterized(model))
