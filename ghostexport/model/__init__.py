"""The model in PyTorch: GhostNet v1–v3 (``arch``), the Ghost module, the rule that puts it into
any CNN and the distillation that fine-tunes it (``ghost``), checkpoints and registry weights,
a user's model factory (``sources``), BatchNorm folding, channel alignment, MAC counting.

May import: base, targets.
"""
