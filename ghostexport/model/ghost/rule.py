"""Which convolutions become Ghost modules: a rule with the paper's defaults, overridable by name.

Defaults (arXiv 1911.11907, section 4.1: "replace the original convolutional layers" with
Ghost modules, s=2, d=3 in the main experiments): every ordinary convolution (groups = 1)
is replaced, except

- a convolution that reads the image (3 or fewer input channels): it is a small share of
  the cost and its filters are the network's first features, and
- a convolution whose output is too narrow to split (fewer output maps than s).

Depthwise and grouped convolutions are left alone: they are already cheap. Fully connected
layers stay too, unless ``ghost_classifier`` (``GhostLinear``): the paper's ResNet-50 counts
(13.0M parameters at s=2, 6.5M at s=4, about 1/s of 25.6M) imply its classifier was
compressed by s as well — convolutions alone leave its 2.05M and give 13.95M / 8.15M. ``include`` and
``exclude`` are shell-style patterns on module names (``layer4.*``, ``*.downsample.0``);
``exclude`` wins, ``include`` (when given) limits the candidates to the names it matches,
and an ``include`` pattern matching a stem convolution replaces it too.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import asdict, dataclass

import torch
import torch.fx
from torch import nn

from ghostexport.base.errors import UsageError
from ghostexport.model.ghost.module import GhostLinear, GhostModule

MAX_RATIO, MAX_DW_SIZE = 16, 9


@dataclass(frozen=True)
class GhostRule:
    ratio: int = 2  # s: each intrinsic map makes s-1 ghost maps
    dw_size: int = 3  # d: the cheap depthwise kernel
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    keep_image_convs: bool = True
    ghost_classifier: bool = False

    def validated(self) -> GhostRule:
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, int) or not 2 <= self.ratio <= MAX_RATIO:
            raise UsageError(f"--ratio must be an integer from 2 to {MAX_RATIO}, got {self.ratio}")
        if (
            isinstance(self.dw_size, bool)
            or not isinstance(self.dw_size, int)
            or not 1 <= self.dw_size <= MAX_DW_SIZE
            or self.dw_size % 2 == 0
        ):
            raise UsageError(f"--dw-size must be an odd integer from 1 to {MAX_DW_SIZE}, got {self.dw_size}")
        return self

    def as_dict(self) -> dict:
        record = asdict(self)
        record["include"], record["exclude"] = list(self.include), list(self.exclude)
        return record

    @classmethod
    def from_dict(cls, record: dict) -> GhostRule:
        return cls(
            int(record["ratio"]),
            int(record["dw_size"]),
            tuple(record.get("include", ())),
            tuple(record.get("exclude", ())),
            bool(record.get("keep_image_convs", True)),
            bool(record.get("ghost_classifier", False)),
        ).validated()


def decide(name: str, conv: nn.Conv2d, rule: GhostRule) -> str | None:
    """None to replace the convolution, else why it is kept."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.exclude):
        return "excluded by name"
    if conv.groups != 1:
        return "depthwise/grouped: already cheap"
    if conv.out_channels < rule.ratio:
        return f"{conv.out_channels} output maps: too few to split by {rule.ratio}"
    if conv.padding_mode != "zeros":
        return f"padding mode {conv.padding_mode}"
    if rule.include:
        matched = any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.include)
        return None if matched else "not matched by --include"
    if rule.keep_image_convs and conv.in_channels <= 3:
        return "reads the image (paper: the first convolution stays)"
    return None


def batchnorm_after(model: nn.Module) -> dict[str, str]:
    """conv name -> the BatchNorm that alone reads its output, found by tracing the model (torch.fx).

    A model that cannot be traced gets no pairs: its BatchNorms stay where they are (after
    the Concat), which is exact but leaves them unfolded."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return {}
    modules = dict(model.named_modules())
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        bn, source = modules[node.target], node.args[0]
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(modules.get(source.target), nn.Conv2d)
            and len(source.users) == 1
            and bn.affine
            and bn.track_running_stats
        ):
            pairs[source.target] = node.target
    return pairs


def ghostify_model(model: nn.Module, rule: GhostRule, warm_start: bool = True) -> tuple[nn.Module, list[dict]]:
    """A copy of ``model`` with the rule's convolutions replaced; one row per convolution considered.

    A convolution's BatchNorm (``batchnorm_after``) moves into its Ghost module, split in two,
    and an ``nn.Identity`` takes its place (see ``module``)."""
    ghosted = copy.deepcopy(model)
    followed_by = batchnorm_after(ghosted)
    rows = []
    for name, module in list(ghosted.named_modules()):
        if isinstance(module, nn.Linear) and rule.ghost_classifier and module.out_features >= rule.ratio:
            rows.append(
                {
                    "name": name,
                    "shape": f"{module.in_features}→{module.out_features}, linear",
                    "replaced": True,
                    "why": "--ghost-classifier",
                }
            )
            _set_module(ghosted, name, GhostLinear.from_linear(module, rule.ratio))
            continue
        if not isinstance(module, nn.Conv2d):
            continue
        kept = decide(name, module, rule)
        row = {
            "name": name,
            "shape": f"{module.in_channels}→{module.out_channels}, {module.kernel_size[0]}×{module.kernel_size[1]}",
            "replaced": kept is None,
            "why": kept
            or f"m = {-(-module.out_channels // rule.ratio)} intrinsic + {rule.dw_size}×{rule.dw_size} ghost maps",
        }
        rows.append(row)
        if kept is None:
            bn_name = followed_by.get(name)
            bn = ghosted.get_submodule(bn_name) if bn_name else None
            ghost = GhostModule.from_conv(module, rule.ratio, rule.dw_size, bn)
            if not warm_start:
                for layer in (ghost.primary, ghost.cheap):
                    layer.reset_parameters()
            _set_module(ghosted, name, ghost)
            if bn_name:
                _set_module(ghosted, bn_name, nn.Identity())
                row["why"] += f", with {bn_name} split into it"
    if not any(row["replaced"] for row in rows):
        raise UsageError("the rule replaces no convolution: check --include/--exclude against the model's module names")
    return ghosted, rows


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)
