"""Fine-tuning a ghosted model by knowledge distillation from the original.

The original network (the teacher) is fixed; its logits on each training image are the
soft targets: loss = T²·KL(softmax(teacher/T) ‖ softmax(student/T)) (Hinton et al., T = 4),
plus the cross-entropy to the labels, equally weighted, when the training folder has class
sub-folders. The teacher's logits are computed once (no augmentation), so an epoch costs
one student forward and backward per image. AdamW with a cosine schedule; BatchNorm in
train mode.

After every epoch the BatchNorm running statistics are measured afresh on the training
images (``recalibrate_batchnorm``), so the held-out figure, and the exported model, compute
what training optimised. Without it they did not: a ghost map's BatchNorm starts from the
replaced channel's statistics, which describe another signal, and momentum-0.1 averages
trail weights that move fast at the start of fine-tuning — a ResNet reached 99% on its
training batches (batch statistics) and 16% held-out (running statistics) after 3 epochs.
Training itself never reads running statistics, so the re-estimate changes no gradient and a
resumed run still continues exactly.

Deterministic with a seed: the shuffling of epoch e is drawn from a generator seeded with
(seed, e), so a run resumed from the checkpoint written after epoch e continues exactly as
the uninterrupted run would have. The checkpoint (``train_state.pt``) holds tensors and
plain values only and is read back with ``weights_only=True``; it is replaced atomically.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ghostexport.base.errors import UsageError
from ghostexport.base.files import atomic_write_bytes

TEMPERATURE = 4.0
STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainRecipe:
    """How the ghosted model is fine-tuned; the defaults of the first four are ``GhostifySpec``'s."""

    epochs: int
    max_minutes: float
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    temperature: float = TEMPERATURE
    seed: int = 0

    def validated(self) -> TrainRecipe:
        if not 1 <= self.epochs <= 1000:
            raise UsageError(f"--epochs must be from 1 to 1000, got {self.epochs}")
        if not (math.isfinite(self.max_minutes) and 0 < self.max_minutes <= 24 * 60):
            raise UsageError(f"--max-minutes must be a number in (0, 1440], got {self.max_minutes}")
        if not 1 <= self.batch_size <= 4096:
            raise UsageError(f"--batch-size must be from 1 to 4096, got {self.batch_size}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise UsageError(f"--lr must be a number in (0, 1], got {self.lr}")
        return self

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "loss": "distillation (KL at T) + cross-entropy when labelled",
            "optimizer": "AdamW, cosine",
        }


@dataclass
class Epoch:
    epoch: int
    loss: float
    train_accuracy: float | None  # to labels, else agreement with the teacher
    eval_accuracy: float | None
    seconds: float


def teacher_logits(teacher: nn.Module, inputs: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    teacher.eval()
    with torch.no_grad():
        return torch.cat(
            [teacher(torch.from_numpy(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
        )


def accuracy(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 agreement of ``model`` with ``targets`` (labels, or the teacher's top-1), in [0, 1]."""
    model.eval()
    with torch.no_grad():
        predicted = np.concatenate(
            [
                model(torch.from_numpy(inputs[i : i + batch_size])).argmax(1).numpy()
                for i in range(0, len(inputs), batch_size)
            ]
        )
    return float((predicted == targets).mean())


def distill(
    student: nn.Module,
    soft: torch.Tensor,
    inputs: np.ndarray,
    labels: np.ndarray | None,
    recipe: TrainRecipe,
    state_dir: Path,
    evaluate: Callable[[nn.Module], float | None],
    on_epoch: Callable[[Epoch], None],
    on_step: Callable[[int, int, float], None] | None = None,
    resume: bool = False,
) -> tuple[list[Epoch], str]:
    """Train ``student`` in place; return the epochs run (resumed ones included) and why training stopped."""
    steps_per_epoch = math.ceil(len(inputs) / recipe.batch_size)
    optimizer = torch.optim.AdamW(student.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / (recipe.epochs * steps_per_epoch), 1.0)))
    )
    history: list[Epoch] = []
    if resume:
        history = _resume(state_dir / STATE_FILE, student, optimizer, schedule, recipe)
    started = time.perf_counter()
    for epoch in range(len(history), recipe.epochs):
        tick = time.perf_counter()
        loss, agreement = _epoch(student, optimizer, schedule, soft, inputs, labels, recipe, epoch, on_step)
        recalibrate_batchnorm(student, inputs, recipe.batch_size)
        record = Epoch(epoch + 1, loss, agreement, evaluate(student), time.perf_counter() - tick)
        history.append(record)
        _save(state_dir / STATE_FILE, student, optimizer, schedule, recipe, history)
        on_epoch(record)
        if (time.perf_counter() - started) / 60 >= recipe.max_minutes and epoch + 1 < recipe.epochs:
            return history, f"time limit ({recipe.max_minutes:g} min) after epoch {epoch + 1}: --resume continues"
    student.eval()
    return history, f"{recipe.epochs} epochs"


def recalibrate_batchnorm(model: nn.Module, inputs: np.ndarray, batch_size: int) -> None:
    """Set every BatchNorm's running statistics to their average over ``inputs`` under the current weights.

    Only the BatchNorms run in train mode (dropout and the rest stay in eval mode, so no random
    draw is consumed); ``momentum=None`` makes PyTorch keep a cumulative average over the
    batches instead of an exponential one. The model is left in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    model.eval()
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        with torch.no_grad():
            # balanced chunks: no trailing batch of one image, which train-mode BatchNorm refuses
            for chunk in np.array_split(inputs, max(1, math.ceil(len(inputs) / batch_size))):
                model(torch.from_numpy(np.ascontiguousarray(chunk)))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()


def _epoch(student, optimizer, schedule, soft, inputs, labels, recipe: TrainRecipe, epoch: int, on_step):
    """One pass in the epoch's seeded order; (mean loss, training accuracy or agreement with the teacher)."""
    x_all = torch.from_numpy(inputs)
    targets = torch.from_numpy(labels).long() if labels is not None else soft.argmax(1)
    steps = math.ceil(len(inputs) / recipe.batch_size)
    total, correct = 0.0, 0
    student.train()
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(recipe.seed * 100_003 + epoch))
    for step in range(steps):
        index = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
        logits = student(x_all[index])
        loss = _loss(logits, soft[index], targets[index] if labels is not None else None, recipe.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        value = loss.item()
        total += value * len(index)
        correct += int((logits.argmax(1) == targets[index]).sum())
        if on_step:
            on_step(step + 1, steps, value)
    return total / len(inputs), correct / len(inputs)


def _loss(logits: torch.Tensor, soft: torch.Tensor, labels: torch.Tensor | None, temperature: float) -> torch.Tensor:
    distillation = F.kl_div(
        F.log_softmax(logits / temperature, dim=1),
        F.log_softmax(soft / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (temperature**2)
    if labels is None:
        return distillation
    return 0.5 * distillation + 0.5 * F.cross_entropy(logits, labels)


def _save(path: Path, student, optimizer, schedule, recipe: TrainRecipe, history: list[Epoch]) -> None:
    import io

    buffer = io.BytesIO()
    torch.save(
        {
            "model": student.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "recipe": asdict(recipe),
            "history": [asdict(epoch) for epoch in history],
        },
        buffer,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def _resume(path: Path, student, optimizer, schedule, recipe: TrainRecipe) -> list[Epoch]:
    if not path.is_file():
        raise UsageError(f"--resume: no training checkpoint at {path}: drop --resume to start afresh")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or not isinstance(saved.get("recipe"), dict):
            raise ValueError("no recipe record")
        history = [Epoch(**epoch) for epoch in saved["history"]]
        changed = {
            k for k, v in asdict(recipe).items() if k not in ("epochs", "max_minutes") and saved["recipe"].get(k) != v
        }
        if not changed:
            student.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"--resume: {path} is not a usable training checkpoint ({reason}): drop --resume to start afresh"
        ) from None
    if changed:
        raise UsageError(
            f"--resume: the checkpoint was trained with other {', '.join(sorted(changed))}: use the same settings, or drop --resume"
        )
    return history
