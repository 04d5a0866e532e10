"""Any ``nn.Module`` a user names: a factory ``package.module:function``, or a torchvision/timm model name.

A factory is imported from the current folder first (as uvicorn and gunicorn do), then from
the installed packages; it is called with ``num_classes=N`` when a class count is given,
else with no arguments. A plain name goes to torchvision's model registry, then timm's;
neither is imported unless a name needs it, and a missing one is named in the error.
Weights come only from ``--checkpoint`` (read with ``weights_only``): nothing is downloaded.

A factory is code. Where the name comes from a person (``build --model``, ``ghostify``,
``--factory``) it runs; where it comes from a file (a manifest handed over with a folder),
it runs only if the person named the same factory (``trusted_factories``). Otherwise a
folder could carry its own ``payload.py`` and have ``check`` run it — the door that
``weights_only`` closes for checkpoints.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import os
import sys
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from ghostexport.base.errors import UsageError

_TRUSTED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("trusted_factories", default=frozenset())


@contextlib.contextmanager
def trusted_factories(names: Iterable[str]) -> Iterator[None]:
    """Within this block, a manifest may rebuild its model with any of these factories (the user named them)."""
    token = _TRUSTED.set(_TRUSTED.get() | frozenset(names))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def require_trusted(name: str, where: str) -> None:
    """Refuse to import ``name`` read from ``where`` (a file) unless the user named that factory."""
    if ":" in name and name not in _TRUSTED.get():
        raise UsageError(
            f"{where} names the model factory {name}; ghostexport imports code only when you name it: "
            f"add --factory {name} if you trust that code"
        )


def describe_source(name: str) -> str:
    if ":" in name:
        return f"factory {name}"
    return f"model name {name} (torchvision, then timm)"


def create_user_model(name: str, num_classes: int | None, seed: int) -> nn.Module:
    """The named model, freshly initialised under ``seed`` (weights come from a checkpoint later)."""
    torch.manual_seed(seed)
    model = _from_factory(name, num_classes) if ":" in name else _from_registry(name, num_classes)
    if not isinstance(model, nn.Module):
        raise UsageError(f"{name} returned a {type(model).__name__}, not a torch.nn.Module: name a model factory")
    return model.eval()


def _from_factory(name: str, num_classes: int | None) -> nn.Module:
    module_name, _, function_name = name.partition(":")
    if not module_name or not function_name.isidentifier():
        raise UsageError(f"model {name}: write a factory as package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"cannot import {module_name} for model {name} ({exc}): run from the folder that holds it, or install it"
        ) from None
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise UsageError(f"{module_name} has no function {function_name}: check the name after the colon")
    if num_classes is None:
        return factory()
    if "num_classes" not in inspect.signature(factory).parameters:
        raise UsageError(f"{name} takes no num_classes argument: drop --num-classes or add it to the factory")
    return factory(num_classes=num_classes)


def _from_registry(name: str, num_classes: int | None) -> nn.Module:
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    problems = []
    try:
        import torchvision.models

        if name in torchvision.models.list_models():
            return torchvision.models.get_model(name, weights=None, **kwargs)
    except Exception as exc:  # a torchvision built for another torch fails at import with a RuntimeError
        problems.append(f"torchvision: {_first_line(exc)}")
    try:
        import timm

        if timm.is_model(name):
            return timm.create_model(name, pretrained=False, **kwargs)
    except ImportError as exc:
        problems.append(f"timm: {_first_line(exc)}")
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise UsageError(
        f"unknown model {name}{detail}: give a torchvision or timm model name (with that package installed) "
        "or a factory as package.module:function"
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
