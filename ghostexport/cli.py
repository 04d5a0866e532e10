"""The ``ghostexport`` command line: a thin layer over the library API.

Only click and the standard library load at start-up; each command imports its stage
(and with it torch/onnx) when it runs, so ``ghostexport --help`` stays well under a second.
Exit codes (docs/design.md): 0 success, 1 a gate failed, 2 unusable input, 3 internal error.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ghostexport.base.choices import CONVERT_FORMATS, EDGE_PRECISIONS, INFERENCE_PRECISIONS
from ghostexport.base.errors import GateFailed, GhostexportError, UsageError
from ghostexport.base.version import __version__
from ghostexport.stages.specs import (
    DEFAULT_BENCH_ITERATIONS,
    BenchSpec,
    BuildSpec,
    CheckSpec,
    GhostifySpec,
    PipelineSpec,
    QuantizeSpec,
    choices_of,
    default_of,
    flag_of,
)

EXIT_GATE, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3


def spec_option(spec: type, name: str, *decls: str, **settings: Any) -> Callable:
    """A click option for a spec field: its default and its choices are the spec's, written once there.

    ``decls`` are the flags (default: the field's, ``specs.flag_of``); a field declared with ``one_of`` becomes a
    ``click.Choice`` (numbers converted back), a field with a default shows it in ``--help``.
    """
    default = default_of(spec, name)
    settings.setdefault("default", default)
    if default is not None and default != () and "show_default" not in settings:
        settings["show_default"] = True
    field_choices = choices_of(spec, name)
    if field_choices is not None and "type" not in settings:
        settings["type"] = click.Choice([str(choice) for choice in field_choices])
        if all(isinstance(choice, int) for choice in field_choices):
            settings["callback"] = lambda _ctx, _param, value: None if value is None else int(value)
            settings["default"] = None if default is None else str(default)
    return click.option(*(decls or (flag_of(spec, name),)), name, **settings)


class BatchType(click.ParamType):
    """``dynamic`` (None) or a positive integer."""

    name = "dynamic|N"

    def convert(self, value: Any, param, ctx) -> int | None:
        if value is None or isinstance(value, int) or value == "dynamic":
            return None if value in (None, "dynamic") else value
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'dynamic' nor an integer", param, ctx)
        if number < 1:
            self.fail(f"{number} is not a positive batch size", param, ctx)
        return number


class NonEmptyPath(click.Path):
    """click.Path turns '' into the current folder; an empty path is a usage error instead."""

    def convert(self, value: Any, param, ctx):
        if isinstance(value, str) and value == "":
            self.fail("is empty: give a path, or leave the option out", param, ctx)
        return super().convert(value, param, ctx)


def common_options(function: Callable) -> Callable:
    """``--json PATH`` and ``--verbose`` for every command, plus uniform error handling."""

    @click.option("--json", "json_path", metavar="PATH", help="Write a machine-readable result to PATH ('-' = stdout).")
    @click.option("--verbose", is_flag=True, help="Show tracebacks for errors.")
    @functools.wraps(function)
    def wrapper(json_path: str | None, verbose: bool, **kwargs: Any) -> None:
        from ghostexport.folder.commit import Terminated, install_termination_handler

        install_termination_handler()
        _refuse_empty_values(json_path)
        problem = _json_path_problem(json_path)
        if problem:  # before any work: a result that cannot be written is known to be lost now
            click.echo(f"error: {problem}", err=True)
            sys.exit(EXIT_USAGE)
        console = _console(stderr=json_path == "-")
        try:
            result = function(console=console, **kwargs)
        except GateFailed as exc:
            payload = exc.result.as_json() if hasattr(exc.result, "as_json") else {}
            _emit_json(json_path, {**payload, "ok": False, "exit_code": EXIT_GATE, "error": str(exc)})
            from rich.markup import escape

            console.print(f"[bold red]FAIL[/] {escape(str(exc))}", soft_wrap=True)
            sys.exit(EXIT_GATE)
        except GhostexportError as exc:
            if verbose:
                traceback.print_exc()
            _emit_json(json_path, {"ok": False, "exit_code": exc.exit_code, "error": str(exc)})
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException:
            raise  # click reports its own usage errors (exit 2)
        except Terminated:
            click.echo("terminated: nothing was left half-written", err=True)
            sys.exit(143)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was left half-written", err=True)
            sys.exit(130)
        except Exception as exc:
            if verbose:
                traceback.print_exc()
            message = f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            _emit_json(json_path, {"ok": False, "exit_code": EXIT_INTERNAL, "error": message})
            click.echo(f"{message} (run with --verbose and report it)", err=True)
            sys.exit(EXIT_INTERNAL)
        try:
            _emit_json(json_path, {**result, "ok": True, "exit_code": 0})
        except GhostexportError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def _json_path_problem(path: str | None) -> str | None:
    """Why ``--json PATH`` cannot be written, or None."""
    return None if not path or path == "-" else _output_path_problem("--json", Path(path))


def _output_path_problem(option: str, path: Path, suffixes: tuple[str, ...] = ()) -> str | None:
    """Why a file the command will write at the end cannot be written there, or None: checked up front."""
    if suffixes and path.suffix.lower() not in suffixes:
        return f"{option} {path}: use a file name ending in {', '.join(suffixes)}"
    if path.is_dir():
        return f"{option} {path} is a folder: give a file path"
    if not path.parent.is_dir():
        return f"{option} {path}: the folder {path.parent} does not exist: create it, or give another path"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"{option} {path}: the folder {path.parent} is not writable: give another path"
    return None


def _refuse_empty_values(json_path: str | None) -> None:
    """An empty string is never a meaningful value (``--out ''`` would write into the current folder)."""
    context = click.get_current_context()
    empty = [
        param.opts[0] if param.opts else param.name
        for param in context.command.params
        if context.params.get(param.name) == "" or (param.name == "json_path" and json_path == "")
    ]
    if empty:
        raise click.UsageError(f"{empty[0]} is empty: give a value, or leave the option out")


def _console(stderr: bool):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and CI: do not wrap the tables at 80
    return console


def _emit_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    text = json.dumps(payload, indent=2, default=str) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from ghostexport.base.files import atomic_write_text

        atomic_write_text(path, text)


def _command_line() -> str:
    """This invocation as one shell-quoted line, for manifests and reports."""
    return " ".join(shlex.quote(arg) for arg in ["ghostexport", *sys.argv[1:]])


def _summarized(console, summary: Callable[[Any], Any], run: Callable[[], Any]) -> Any:
    """``run()``, then print ``summary`` of its result — also of the result a failed gate carries."""
    try:
        result = run()
    except GateFailed as failure:
        if failure.result is not None:
            console.print(summary(failure.result))
        raise
    console.print(summary(result))
    return result


def factory_option(function: Callable) -> Callable:
    """``--factory PKG.MODULE:FN`` (repeatable): a custom model's factory the user trusts to be imported.

    A folder's manifest names the factory its model was built from; ``check``, ``bench --torch``
    and ``convert`` rebuild the PyTorch model from it only when the user names it here.
    """

    @click.option(
        "--factory",
        "factories",
        multiple=True,
        metavar="PKG.MODULE:FN",
        help="Rebuild a custom model from this factory (as its manifest names it): imported only when named here.",
    )
    @functools.wraps(function)
    def wrapper(factories: tuple[str, ...], **kwargs: Any):
        from ghostexport.model.sources import trusted_factories

        with trusted_factories(factories):
            return function(**kwargs)

    return wrapper


#: what matplotlib writes without extra packages
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

#: execution provider, shared by check, bench and pipeline
PROVIDER_OPTION = spec_option(CheckSpec, "provider")
#: run on the CPU when the provider cannot start; shared by check, bench and pipeline
ALLOW_FALLBACK_OPTION = click.option(
    "--allow-fallback", is_flag=True, help="Run on the CPU if the provider cannot start (reported)."
)
#: another device to run the ONNX artifacts on, shared by check, bench and pipeline
ON_OPTION = click.option(
    "--on",
    "on",
    multiple=True,
    metavar="CMD",
    help="Also run the ONNX artifacts on a device: CMD starts Python there with numpy and onnxruntime, e.g. "
    "'ssh pi@board python3'; outputs are gated and timings recorded here, an emulated device's marked (repeatable).",
)
#: cuDNN's convolution algorithm search (CUDA provider), shared by check and bench
CUDNN_ALGO_OPTION = spec_option(CheckSpec, "cudnn_conv_algo_search")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ghostexport")
def main() -> None:
    """GhostNet from PyTorch to verified, simplified, quantized ONNX artifacts.

    \b
    Example:
      ghostexport pipeline              # GhostNet 1.0x: build, quantize, check, bench, report
      ghostexport build --width 1.0     # models/ghostnet_100/model.onnx + manifest.json

    Exit codes: 0 success, 1 a check or gate failed (the artifact is not good),
    2 usage or unusable input, 3 internal error (a bug: run with --verbose and report it).
    """


BUILD_OPTIONS = [
    click.option(
        "--model",
        default=None,
        metavar="PKG.MODULE:FN|NAME",
        help="Any CNN instead of GhostNet: a factory (imported from the current folder first) or a "
        "torchvision/timm model name; same export, simplify and parity gates.",
    ),
    spec_option(BuildSpec, "variant", help="Architecture family.  [default: ghostnet]"),
    click.option("--width", type=float, default=None, help="Width multiplier (> 0).  [default: 1.0]"),
    click.option(
        "--num-classes", type=int, default=None, help="Classifier size.  [default: the checkpoint's, else 1000]"
    ),
    click.option(
        "--checkpoint",
        type=NonEmptyPath(dir_okay=False, path_type=Path),
        default=None,
        help="Local state dict (.pth/.pt/.safetensors).",
    ),
    click.option(
        "--weights",
        default=None,
        metavar="NAME|URL",
        help="Registry name (ghostnet_100.in1k) or URL, downloaded and cached.",
    ),
    click.option(
        "--reset-head", is_flag=True, help="Replace the checkpoint's classifier with a new one of --num-classes."
    ),
    spec_option(BuildSpec, "seed", type=int, help="Seed for random init, 0 to 2**32-1 (recorded for rebuilds)."),
    spec_option(BuildSpec, "resolution", type=int, help="Input height and width."),
    spec_option(BuildSpec, "opset", type=int, help="ONNX opset."),
    click.option(
        "--batch", type=BatchType(), default="dynamic", show_default=True, help="'dynamic' or a static batch size."
    ),
    spec_option(BuildSpec, "simplifier"),
    spec_option(BuildSpec, "exporter", help="torch.onnx exporter."),
    spec_option(
        BuildSpec,
        "target",
        help="The machine class the artifact is for: its int8 types, channel alignment and Concat split "
        "(docs/design.md, Targets); host: this machine's int8 types, the graph as built.",
    ),
    spec_option(
        BuildSpec,
        "align_channels",
        help="Zero-pad Ghost halves to multiples of N for ORT's x86 NCHWc kernels (16: AVX-512, 8: AVX2; v1 only).  "
        "[default: the target's]",
    ),
    click.option(
        "--split-concat-convs/--no-split-concat-convs",
        default=None,
        help="Move each Ghost Concat past the 1x1 and depthwise convs that consume it: exact, 9-14% off fp32 "
        "latency on x86; quantize merges it back, so int8 keeps its quality.  [default: the target's]",
    ),
    spec_option(BuildSpec, "out", type=NonEmptyPath(file_okay=False, path_type=Path), help="Artifact root."),
]


def build_options(function: Callable) -> Callable:
    """The build flags, shared by ``build`` and ``pipeline``."""
    for option in reversed(BUILD_OPTIONS):
        function = option(function)
    return function


@main.command()
@build_options
@common_options
def build(console, **options: Any) -> dict:
    """Build GhostNet, export it to ONNX, simplify it, and gate it on parity with PyTorch.

    Writes <out>/<variant>_<width*100>[-cN][-rR][-bN]/ with model.onnx and manifest.json
    (replacing a previous build whole), and records that folder in <out>/LATEST.

    \b
    Examples:
      ghostexport build --width 1.0
      ghostexport build --width 0.5 --resolution 96 --batch 1 --out /tmp/models
      ghostexport build --checkpoint ghostnet_1x.pth --num-classes 10 --reset-head
      ghostexport build --width 1.0 --target arm64
      ghostexport build --model mynets:small_cnn --checkpoint small_cnn.pt --num-classes 10 --resolution 32
    """
    from ghostexport.render.console import build_summary, stage_printer
    from ghostexport.stages.build import build as run_build

    spec = BuildSpec(**options, command=_command_line())
    return _summarized(console, build_summary, lambda: run_build(spec, progress=stage_printer(console))).as_json()


@main.command()
@click.argument("model_name", metavar="MODEL")
@click.option(
    "--checkpoint",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    default=None,
    help="The original model's state dict (.pth/.pt/.safetensors).  [default: random init]",
)
@click.option("--num-classes", type=int, default=None, help="Passed to the model factory.  [default: its own]")
@spec_option(
    GhostifySpec,
    "ratio",
    type=int,
    help="s: each primary map makes s-1 cheap ghost maps (params and MACs ≈ 1/s).",
)
@spec_option(GhostifySpec, "dw_size", type=int, help="d: the cheap depthwise kernel (odd).")
@click.option(
    "--include",
    multiple=True,
    metavar="PATTERN",
    help="Replace only convs whose module name matches (shell pattern, repeatable).",
)
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Keep convs whose module name matches (repeatable).")
@click.option(
    "--ghost-classifier",
    is_flag=True,
    help="Compress the fully connected classifier by s too (how the paper's ResNet-50 counts come out; "
    "costs accuracy with few classes).",
)
@spec_option(GhostifySpec, "resolution", type=int, help="Input height and width.")
@click.option(
    "--train",
    "train_data",
    metavar="DIR|FILE.npy",
    default=None,
    help="Fine-tune on these images by distillation from the original (+ labels from class sub-folders).",
)
@click.option(
    "--eval",
    "eval_data",
    metavar="DIR|FILE.npy",
    default=None,
    help="Held-out images: accuracy (labelled) or top-1 agreement with the original, before and after.",
)
@spec_option(GhostifySpec, "epochs", type=int)
@spec_option(
    GhostifySpec,
    "max_minutes",
    type=float,
    help="Stop after the epoch that passes this time (--resume continues).",
)
@spec_option(GhostifySpec, "batch_size", type=int)
@spec_option(GhostifySpec, "lr", type=float, help="AdamW learning rate (cosine schedule).")
@spec_option(GhostifySpec, "seed", type=int, help="Initialisation and shuffling (deterministic).")
@click.option("--resume", is_flag=True, help="Continue the fine-tuning from its last epoch checkpoint.")
@spec_option(
    GhostifySpec,
    "max_drop",
    type=float,
    metavar="PT",
    help="Most held-out accuracy points (unlabelled --eval: points of agreement with the original) "
    "the ghosted model may lose; more fails (exit 1) and builds nothing.",
)
@spec_option(
    GhostifySpec,
    "build",
    "--build/--no-build",
    help="Export the original and the ghosted model through build's gates.",
)
@spec_option(GhostifySpec, "target")
@spec_option(GhostifySpec, "out", type=NonEmptyPath(file_okay=False, path_type=Path))
@common_options
def ghostify(console, model_name: str, train_data, eval_data, **options: Any) -> dict:
    """Replace a CNN's convolutions with Ghost modules, fine-tune by distillation, build both.

    MODEL is a factory (package.module:function, imported from the current folder first) or
    a torchvision/timm model name. Default rule (the paper's): every ordinary convolution
    except the one reading the image; depthwise/grouped ones stay. Writes
    <out>/<model>-ghost-s<S>d<D>[-cN][-rR].ghostify/ (weights, training checkpoint, report),
    and build folders for the original and the ghosted model: compare them with
    `ghostexport bench ORIGINAL GHOSTED`. The verdict is measured on --eval: exit 1 (and no
    builds) when the ghosted model loses more than --max-drop points of held-out accuracy
    (unlabelled images: of top-1 agreement with the original); without --eval it is
    UNMEASURED, never PASS.

    \b
    Examples:
      ghostexport ghostify mynets:small_cnn --num-classes 10 --resolution 32 --no-build
      ghostexport ghostify mynets:small_cnn --checkpoint small_cnn.pt --num-classes 10 --resolution 32 --train images --eval holdout --epochs 5
      ghostexport ghostify resnet50 --ratio 4 --no-build   # torchvision's, when installed
    """
    from ghostexport.render.console import ghostify_summary, stage_printer, training_bar
    from ghostexport.stages.ghostify import ghostify as run_ghostify

    spec = GhostifySpec(model_name, train=train_data, eval=eval_data, command=_command_line(), **options)
    with training_bar(console) as on_step:
        run = lambda: run_ghostify(spec, progress=stage_printer(console), on_step=on_step)  # noqa: E731
        return _summarized(console, ghostify_summary, run).as_json()


#: int8 calibration data, shared by quantize and pipeline
CALIB_OPTION = click.option(
    "--calib",
    metavar="DIR|FILE.npy|synthetic:N",
    default=None,
    help="Calibration images (folder, recursively), preprocessed N×3×H×W .npy, or synthetic:N.  "
    "[default: synthetic images, with a warning: figures reported, not enforced]",
)

#: the guard on a folder's verified artifacts, shared by quantize and convert
REPLACE_VERIFIED_OPTION = click.option(
    "--replace-verified",
    is_flag=True,
    help="Let synthetic data replace an artifact whose gate passed on real data (refused otherwise).",
)

#: int8 recipe choice shared by quantize and pipeline
FLOAT_ENDS_OPTION = spec_option(
    QuantizeSpec,
    "float_ends",
    help="Ends kept in float (logits always stay float): the stem conv (accurate), both, the "
    "classifier, or none (fastest: the stem runs int8 in a space-to-depth form, ~6% off).",
)


@main.command()
@click.argument("model", required=False)
@spec_option(QuantizeSpec, "mode")
@CALIB_OPTION
@click.option(
    "--eval",
    "eval_data",
    metavar="DIR|FILE.npy",
    default=None,
    help="Evaluation data.  [default: every 4th calibration item, held out]",
)
@spec_option(
    QuantizeSpec,
    "method",
    help="Calibration method; auto searches methods and float layers for --target-sqnr/--max-accuracy-drop.",
)
@spec_option(QuantizeSpec, "per_channel", "--per-channel/--per-tensor", help="Weight quantization granularity.")
@click.option("--exclude", multiple=True, metavar="NODE", help="Keep this node in float (repeatable).")
@click.option("--target-sqnr", type=float, default=None, metavar="DB", help="Minimum logits SQNR (dB) to meet.")
@click.option(
    "--max-accuracy-drop",
    type=float,
    default=None,
    metavar="PT",
    help="Maximum top-1 accuracy drop (points); needs labels.",
)
@FLOAT_ENDS_OPTION
@spec_option(
    QuantizeSpec,
    "shared_concat_scales",
    "--share-concat-scales/--no-share-concat-scales",
    help="One quantization range per Concat (inputs and output): a copy instead of a requantization.",
)
@spec_option(
    QuantizeSpec,
    "target",
    help="The machine class the artifact is for (its int8 types).  [default: the build's target, else host]",
)
@spec_option(
    QuantizeSpec,
    "baseline",
    "--baseline/--no-baseline",
    help="Also measure ORT's stock per-channel MinMax recipe on the same data, for comparison.",
)
@REPLACE_VERIFIED_OPTION
@common_options
def quantize(console, model: str | None, eval_data, exclude, **options: Any) -> dict:
    """Quantize MODEL (build folder or .onnx; default: models/LATEST) and prove its quality.

    Writes model.int8.onnx / model.fp16.onnx / model.int8-dynamic.onnx beside model.onnx
    (never modifying it) only if the quality gate holds on real data: int8 SQNR ≥ 20 dB and
    top-1 agreement ≥ 0.95; fp16 cosine ≥ 0.999 and agreement ≥ 0.99.

    \b
    Examples:
      ghostexport quantize --calib images/ --eval holdout/
      ghostexport quantize models/ghostnet_100 --mode fp16
      ghostexport quantize --calib images/ --method auto --target-sqnr 30 --max-accuracy-drop 0.5
      ghostexport quantize --calib calib.npy --exclude /conv_head/Conv
    """
    from ghostexport.render.console import calibration_bar, quantize_summary, stage_printer
    from ghostexport.stages.quantize import quantize as run_quantize

    _announce_latest(console, model)

    spec = QuantizeSpec(model, eval=eval_data, exclude=tuple(exclude), **options)

    def run():
        with calibration_bar(console) as on_batch:
            return run_quantize(spec, progress=stage_printer(console), calibration_progress=on_batch)

    return _summarized(console, quantize_summary, run).as_json()


def _model_and_images(paths: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """``[MODEL] IMAGE...``: the first path is the model when it is a folder or a model file."""
    first = Path(paths[0])
    if first.is_dir() or first.suffix.lower() in (".onnx", ".ort"):
        return paths[0], list(paths[1:])
    return None, list(paths)


def _announce_latest(console, model: str | None) -> None:
    """With no MODEL, say first which folder models/LATEST picked."""
    if model is None:
        from ghostexport.folder.naming import read_latest

        console.print(f"using {read_latest()} (from models/LATEST)")


def batches_options(flag: str, default: tuple[int, ...], help_text: str) -> Callable[[Callable], Callable]:
    """``--batches`` (a comma-separated list), and its former spelling kept working but hidden.

    build's ``--batch`` is one static export batch; check, bench and the pipeline take a list,
    so theirs is ``--batches``.
    """
    old = flag.removesuffix("es")

    def decorate(function: Callable) -> Callable:
        function = click.option(old, "legacy_batches", default=None, hidden=True, help=f"Former name of {flag}.")(
            function
        )
        listed = ",".join(map(str, default))
        return click.option(flag, "batches", default=listed, show_default=True, help=help_text)(function)

    return decorate


def _batches(batches: str, legacy: str | None, flag: str) -> tuple[int, ...]:
    return _int_list(legacy if legacy is not None else batches, flag)


def _int_list(value: str, flag: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a comma-separated list of integers, e.g. 1,8,32") from None
    if not numbers or any(n < 1 for n in numbers):
        raise UsageError(f"{flag} {value!r} needs positive integers, e.g. 1,8,32")
    return numbers


def select_seconds_option(spec: type):
    """``--select-seconds``, shared by bench and pipeline (each spec with its own default budget)."""
    return spec_option(spec, "select_seconds", type=float, help="Time budget of --select, [1, 3600].")


@main.command()
@click.argument("model", required=False)
@click.option(
    "--reference",
    default=None,
    metavar="torch|OTHER.onnx",
    help="What to compare against.  [default: torch for model.onnx, model.onnx for quantized artifacts]",
)
@PROVIDER_OPTION
@click.option(
    "--data", default=None, metavar="DIR|FILE.npy", help="Real inputs (int8/fp16 gates are enforced only on real data)."
)
@spec_option(CheckSpec, "samples", type=int, help="Random inputs when no --data (at least 2).")
@batches_options("--batches", default_of(CheckSpec, "batches"), "Batch sizes, comma-separated.")
@click.option("--atol", type=float, default=None, help="fp32 absolute tolerance, finite, >= 0.  [default: 1e-4]")
@click.option("--rtol", type=float, default=None, help="fp32 relative tolerance, finite, >= 0.  [default: 1e-3]")
@click.option(
    "--min-cosine", type=float, default=None, help="fp32: worst sample's cosine, in [-1, 1].  [default: 0.99999]"
)
@click.option(
    "--min-mean-cosine", type=float, default=None, help="fp16/int8: mean cosine, in [-1, 1].  [default: 0.999 fp16]"
)
@click.option(
    "--min-agreement", type=float, default=None, help="Top-1 agreement in [0, 1].  [default: 0.99 fp16, 0.95 int8]"
)
@click.option("--localize", is_flag=True, help="Name the first node whose output leaves tolerance.")
@ON_OPTION
@ALLOW_FALLBACK_OPTION
@CUDNN_ALGO_OPTION
@common_options
@factory_option
def check(
    console,
    model,
    reference,
    provider,
    data,
    samples,
    batches,
    legacy_batches,
    atol,
    rtol,
    min_cosine,
    min_mean_cosine,
    min_agreement,
    localize,
    on,
    allow_fallback,
    cudnn_conv_algo_search,
) -> dict:
    """Check every artifact of MODEL against its reference; exit 1 if any fails.

    model.onnx is compared with PyTorch rebuilt from the manifest; quantized artifacts with
    model.onnx. Results are appended to the manifest's checks.

    \b
    Examples:
      ghostexport check                                   # models/LATEST, CPU, random inputs
      ghostexport check models/ghostnet_100 --data images/ --json report.json
      ghostexport check models/ghostnet_100 --provider cuda
      ghostexport check other.onnx --reference models/ghostnet_100/model.onnx --localize
    """
    from ghostexport.render.console import check_summary, stage_printer
    from ghostexport.stages.check import check as run_check

    spec = CheckSpec(
        model,
        reference=reference,
        provider=provider,
        data=data,
        samples=samples,
        batches=_batches(batches, legacy_batches, "--batches"),
        atol=atol,
        rtol=rtol,
        min_cosine=min_cosine,
        min_mean_cosine=min_mean_cosine,
        min_agreement=min_agreement,
        localize=localize,
        on=tuple(on),
        allow_fallback=allow_fallback,
        cudnn_conv_algo_search=cudnn_conv_algo_search,
        command=_command_line(),
    )
    _announce_latest(console, model)
    return _summarized(console, check_summary, lambda: run_check(spec, progress=stage_printer(console))).as_json()


@main.command()
@click.argument("models", nargs=-1)
@PROVIDER_OPTION
@batches_options("--batches", default_of(BenchSpec, "batches"), "Batch sizes, comma-separated (e.g. 1,8,32).")
@click.option(
    "--threads",
    type=int,
    default=None,
    help="intra-op threads, 1 to 4 per CPU.  [default: ORT's, one per physical core]",
)
@spec_option(
    BenchSpec,
    "streams",
    type=int,
    help="Concurrent requests per model, 1 to 4 per CPU (throughput mode; threads default to cores / streams).",
)
@spec_option(BenchSpec, "warmup", type=int, help="Warm-up runs per model and batch size (>= 0).")
@spec_option(
    BenchSpec,
    "iterations",
    "--iters",
    type=int,
    help=f"Timed rounds, 1 to 1,000,000.  [default: {DEFAULT_BENCH_ITERATIONS}]",
)
@click.option("--seconds", type=float, default=None, help="Time budget per batch size instead of --iters, (0, 3600].")
@click.option(
    "--torch", "torch_eager", is_flag=True, help="Add PyTorch eager (rebuilt from the manifest), same device."
)
@click.option(
    "--csv", "csv_path", type=NonEmptyPath(dir_okay=False, path_type=Path), default=None, help="Write rows as CSV."
)
@click.option(
    "--plot",
    "plot_path",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    default=None,
    help="Write a PNG: latency distribution and throughput per batch (needs [plot]).",
)
@ALLOW_FALLBACK_OPTION
@CUDNN_ALGO_OPTION
@click.option(
    "--select",
    is_flag=True,
    help="Also time every artifact of the folder that passed its gates (ONNX on ORT, .tflite/.pte on their "
    "runtime) under each setting (threads; ORT: spinning, graph optimisation) and the naive export, "
    "and record the fastest as recommended.",
)
@select_seconds_option(BenchSpec)
@ON_OPTION
@click.option("--trt-fp16", is_flag=True, help="TensorRT: allow fp16 kernels.")
@click.option("--trt-cache", "trt_engine_cache", default=None, metavar="DIR", help="TensorRT: engine cache folder.")
@common_options
@factory_option
def bench(console, models, batches, legacy_batches, csv_path, plot_path, **options: Any) -> dict:
    """Time MODELS side by side (a folder means all its artifacts), interleaved.

    \b
    Examples:
      ghostexport bench                                   # every artifact of models/LATEST
      ghostexport bench models/ghostnet_100 --batches 1,8 --torch --plot bench.png
      ghostexport bench a.onnx b.onnx --threads 1 --seconds 5 --csv bench.csv
      ghostexport bench models/ghostnet_100 --provider cuda --batches 1,32
      ghostexport bench models/ghostnet_100 --batches 32 --streams 2      # throughput mode
      ghostexport bench models/ghostnet_100 --select                      # recommend artifact and settings
    """
    for option, path, suffixes in (("--plot", plot_path, PLOT_SUFFIXES), ("--csv", csv_path, ())):
        problem = path and _output_path_problem(option, path, suffixes)
        if problem:
            raise UsageError(problem)
    from ghostexport.render.console import bench_summary, stage_printer
    from ghostexport.render.plot import bench_plot as plot
    from ghostexport.stages.bench import bench as run_bench

    batches = _batches(batches, legacy_batches, "--batches")
    spec = BenchSpec(tuple(models), batches=batches, command=_command_line(), **options)
    if not models:
        _announce_latest(console, None)
    result = run_bench(spec, progress=stage_printer(console))
    console.print(bench_summary(result))
    if csv_path:
        result.write_csv(csv_path)
        console.print(f"wrote {csv_path}")
    if plot_path:
        console.print(f"wrote {plot(result, plot_path)}")
    return result.as_json()


@main.command()
@build_options
@CALIB_OPTION
@click.option(
    "--eval", "eval_data", metavar="DIR|FILE.npy", default=None, help="Evaluation data for quantize and check."
)
@PROVIDER_OPTION
@click.option("--ort", is_flag=True, help="Also convert model.onnx to ORT format (convert --to ort).")
@click.option(
    "--edge",
    default=None,
    metavar="litert,executorch,openvino|none",
    help="Also convert to these runtimes, fp32 and int8 (convert --to RUNTIME), gated, benched beside ORT "
    "[default: openvino where installed, for an x86 target; else none].",
)
@batches_options(
    "--bench-batches", default_of(PipelineSpec, "bench_batches"), "Batch sizes to benchmark, comma-separated."
)
@spec_option(PipelineSpec, "bench_iterations", "--bench-iters", type=int, help="Timed rounds per batch size (>= 1).")
@ALLOW_FALLBACK_OPTION
@click.option(
    "--select/--no-select",
    default=None,
    help="End with bench --select: the fastest artifact that passed, and its settings "
    "[default: on for --provider cpu].",
)
@select_seconds_option(PipelineSpec)
@FLOAT_ENDS_OPTION
@ON_OPTION
@common_options
def pipeline(
    console,
    calib,
    eval_data,
    provider,
    ort,
    edge,
    batches,
    legacy_batches,
    bench_iterations,
    allow_fallback,
    select,
    select_seconds,
    float_ends,
    on,
    **options,
) -> dict:
    """Build -> quantize (int8, fp16) -> check -> bench (-> convert), then report.md/report.json.

    Stops with exit 1 at the first failed gate, with a report that says which gate and why.

    \b
    Examples:
      ghostexport pipeline                                  # GhostNet 1.0x, synthetic calibration
      ghostexport pipeline --checkpoint ghostnet_1x.pth --calib images/ --eval holdout/ --ort
      ghostexport pipeline --width 0.5 --provider cuda --bench-batches 1,32
      ghostexport pipeline --align-channels 16 --split-concat-convs --float-ends none   # fastest on x86
    """
    from ghostexport.render.console import stage_printer
    from ghostexport.stages.pipeline import pipeline as run_pipeline

    spec = PipelineSpec(
        BuildSpec(**options, command=_command_line()),
        calib=calib,
        eval=eval_data,
        provider=provider,
        ort=ort,
        edge=None if edge is None else tuple(n.strip() for n in edge.split(",") if n.strip() and n.strip() != "none"),
        bench_batches=_batches(batches, legacy_batches, "--bench-batches"),
        bench_iterations=bench_iterations,
        allow_fallback=allow_fallback,
        float_ends=float_ends,
        select=select,
        select_seconds=select_seconds,
        on=on,
        command=_command_line(),
    )
    result = run_pipeline(spec, progress=stage_printer(console))
    if result.verdict == "reported":
        reported = ", ".join(s["stage"] for s in result.stages if s["verdict"] == "reported")
        console.print(
            f"[bold green]PASS[/] [yellow](REPORTED, not enforced: {reported})[/] report: {result.report_md}",
            soft_wrap=True,
        )
    else:
        console.print(f"[bold green]PASS[/] report: {result.report_md}")
    return result.as_json()


@main.command()
@click.argument("model", required=False)
@click.option(
    "--to",
    "to",
    type=click.Choice(CONVERT_FORMATS),
    required=True,
    help="ort: ONNX Runtime's mobile format; litert: .tflite ([litert] extra); executorch: .pte, XNNPACK "
    "([executorch] extra); openvino: OpenVINO IR .xml + .bin ([openvino] extra).",
)
@click.option(
    "--precision",
    type=click.Choice(EDGE_PRECISIONS),
    default=EDGE_PRECISIONS[0],
    show_default=True,
    help="litert/executorch/openvino: fp32 (parity-gated) or int8 (PT2E static / NNCF, quality-gated).",
)
@CALIB_OPTION
@click.option(
    "--eval", "eval_data", metavar="DIR|FILE.npy", default=None, help="int8 (and bf16-run) evaluation images."
)
@click.option("--float-io", is_flag=True, help="litert int8: float input and output (quantized inside the model).")
@click.option(
    "--inference-precision",
    type=click.Choice(INFERENCE_PRECISIONS),
    default=INFERENCE_PRECISIONS[0],
    show_default=True,
    help="openvino: the precision the IR is gated and run at; auto: the CPU plugin's own (bf16 on CPUs with bf16).",
)
@REPLACE_VERIFIED_OPTION
@common_options
@factory_option
def convert(console, model, to, precision, calib, eval_data, float_io, inference_precision, replace_verified) -> dict:
    """Convert MODEL to another runtime's format, gated like the ONNX artifacts.

    --to ort converts MODEL (folder: its model.onnx) to ONNX Runtime's mobile format and
    writes <artifact>.ort and <artifact>.required_operators.config (for a reduced ORT build).
    --to litert / executorch convert the PyTorch model the folder's manifest rebuilds to
    model[.int8].tflite / model[.int8].pte, --to openvino the folder's model.onnx to
    model[.int8].xml + .bin: fp32 gated on parity with PyTorch, int8 (and an IR that runs in
    bf16) on quality against PyTorch's fp32 logits on real data, recorded in the manifest.

    \b
    Examples:
      ghostexport convert --to ort
      ghostexport convert models/ghostnet_100/model.int8.onnx --to ort
      ghostexport convert --to executorch
      ghostexport convert --to litert
      ghostexport convert --to openvino --precision int8 --calib images/
    """
    from ghostexport.render.console import stage_printer
    from ghostexport.stages.convert import convert as run_convert

    _announce_latest(console, model)
    options = {"precision": precision, "calib": calib, "eval": eval_data, "float_io": float_io}
    options |= {"replace_verified": replace_verified, "inference_precision": inference_precision}
    return run_convert(model, to=to, progress=stage_printer(console), **options).as_json()


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] IMAGE...")
@click.option("--topk", type=int, default=5, show_default=True)
@click.option(
    "--labels",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    default=None,
    help="Class names, one per line (or TSV, last column).  [default: ImageNet-1k for 1000 classes]",
)
@common_options
def predict(console, paths, topk, labels) -> dict:
    """Top-k classes for IMAGE... with MODEL's recorded preprocessing (default: models/LATEST).

    MODEL is a build folder or a model file (.onnx, .ort); when the first path is neither,
    every path is an image and the model is the one models/LATEST names.

    \b
    Examples:
      ghostexport predict cat.jpg
      ghostexport predict models/ghostnet_100 cat.jpg dog.png
      ghostexport predict models/ghostnet_050-c10-r64 digit.png --labels digits.txt --topk 3
    """
    from rich.markup import escape

    from ghostexport.render.console import predict_tables
    from ghostexport.stages.predict import predict as run_predict

    model, images = _model_and_images(paths)
    if not images:
        raise UsageError(f"no images given after the model {model}: ghostexport predict [MODEL] IMAGE...")
    _announce_latest(console, model)
    result = run_predict(model, images, topk=topk, labels=labels)
    for warning in result.warnings:
        console.print(f"[bold yellow]WARNING[/] {escape(warning)}", soft_wrap=True)
    for table in predict_tables(result):
        console.print(table)
    return result.as_json()


@main.command()
@click.argument("model", required=False)
@click.option("--schema", is_flag=True, help="Print the JSON Schema of manifest.json instead.")
@common_options
def info(console, model, schema) -> dict:
    """Describe MODEL: variant, width, params, MACs, ops, opset, I/O, metadata, artifacts and verdicts.

    Works on a foreign .onnx too (then from the graph alone).

    \b
    Examples:
      ghostexport info models/ghostnet_100
      ghostexport info some/other/model.onnx --json -
      ghostexport info --schema > manifest.schema.json
    """
    from ghostexport.render.console import info_summary
    from ghostexport.stages.info import info as run_info

    if schema:
        from ghostexport.folder.manifest import manifest_schema

        click.echo(json.dumps(manifest_schema(), indent=2))
        return {"schema": manifest_schema()}
    if model is None:
        raise UsageError("give a MODEL (a build folder or an .onnx), or --schema")
    described = run_info(model)
    console.print(info_summary(described))
    return described
