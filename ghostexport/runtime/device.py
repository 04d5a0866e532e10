"""Running an artifact on another device: the interpreter a command starts, fed a program through a pipe.

``--on CMD`` names a command that starts a Python interpreter on the device and reads its
program from standard input — ``ssh pi@board python3``, ``docker run -i --rm --platform
linux/arm64 IMAGE python3``, ``qemu-aarch64 -L SYSROOT SYSROOT/usr/bin/python3``. The device
needs numpy and onnxruntime, nothing of ghostexport or torch: each call sends the
self-contained ``device_worker`` program with one request (the artifact's bytes, the inputs)
appended, closes the pipe, and reads one answer line. Outputs come back and every gate is
applied here, on the same figures as a local run. A device that cannot start, lacks the
runtime, dies mid-run or prints something else is a one-line usage error naming the device
and the fix; nothing is recorded.
"""

from __future__ import annotations

import base64
import functools
import json
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ghostexport.base.errors import UsageError
from ghostexport.runtime import device_worker
from ghostexport.runtime.device_worker import ERROR, RESULT

#: an emulated ARM64 run of a GhostNet 1.0× evaluation takes minutes; a real board far less
CALL_TIMEOUT_S = 3600.0
#: what to do about each kind of failure the worker reports
FIXES = {
    "missing-runtime": "install numpy and onnxruntime on the device (pip install onnxruntime)",
    "cannot-load": "upgrade onnxruntime on the device, or rebuild with an older --opset",
}


@dataclass
class Device:
    """One ``--on CMD``: how to start the device's interpreter, and what it said about itself."""

    command: str
    description: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.command

    @property
    def emulated(self) -> bool:
        return bool(self.description.get("emulated"))

    @property
    def record(self) -> dict:
        """The device as the manifest records it: its command and what it said about itself."""
        return {"command": self.command, **self.description}

    def logits(self, artifact: bytes, inputs: np.ndarray, batch: int) -> np.ndarray:
        """The artifact's outputs on the device for ``inputs``, ``batch`` images per call."""
        inputs = device_worker.array_to(np.asarray(inputs, dtype=np.float32))
        answer = self._call({"kind": "logits", "artifact": _b64(artifact), "inputs": inputs, "batch": batch})
        return self._array(answer["logits"])

    def latency_ms(
        self, artifacts: dict[str, bytes], shape: tuple[int, ...], iterations: int, warmup: int, threads: int | None
    ) -> dict[str, list[float]]:
        """Per artifact, its latencies in ms on the device: ``warmup`` untimed calls, then ``iterations`` rounds
        in which every artifact runs once, in turn."""
        request = {"kind": "latency", "artifacts": {label: _b64(data) for label, data in artifacts.items()}}
        answer = self._call(
            request | {"shape": list(shape), "iterations": iterations, "warmup": warmup, "threads": threads}
        )
        return {label: [float(value) for value in values] for label, values in answer["latency_ms"].items()}

    def describe(self) -> dict:
        return self._call({"kind": "describe"})["device"]

    def _call(self, request: dict) -> dict:
        program = _worker_source() + f"\nmain({json.dumps(json.dumps(request))})\n"
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            raise UsageError(f"--on {self.command!r} is not a command line ({exc}): quote it as a shell would") from exc
        if not argv:
            raise UsageError("--on needs a command that starts Python on the device, e.g. --on 'ssh pi@board python3'")
        try:
            done = subprocess.run(argv, input=program.encode(), capture_output=True, timeout=CALL_TIMEOUT_S)
        except FileNotFoundError as exc:
            raise UsageError(f"device {self.name!r}: {argv[0]} not found: check the --on command") from exc
        except subprocess.TimeoutExpired as exc:
            raise UsageError(
                f"device {self.name!r} gave no answer in {CALL_TIMEOUT_S:.0f} s: is it reachable?"
            ) from exc
        answer = self._answer(done)
        self.description = answer.get("device", self.description)
        return answer

    def _answer(self, done: subprocess.CompletedProcess) -> dict:
        lines = done.stdout.decode("utf-8", errors="replace").splitlines()
        for line in reversed(lines):
            if line.startswith(ERROR):
                failure = _json(line[len(ERROR) :]) or {}
                fix = FIXES.get(failure.get("kind"), "see the message")
                raise UsageError(f"device {self.name!r}: {failure.get('message', 'failed')}: {fix}")
            if line.startswith(RESULT):
                answer = _json(line[len(RESULT) :])
                if isinstance(answer, dict) and isinstance(answer.get("device"), dict):
                    return answer
                break
        last = (done.stderr.decode("utf-8", errors="replace").strip().splitlines() or [""])[-1][:200]
        if done.returncode != 0:
            raise UsageError(
                f"device {self.name!r} stopped (exit {done.returncode}) before answering"
                + (f": {last}" if last else "")
                + "; check that the command starts Python 3 with numpy and onnxruntime"
            )
        raise UsageError(
            f"device {self.name!r} answered with something that is not a ghostexport result: make --on start a plain "
            "Python interpreter that reads its program from standard input (e.g. 'ssh HOST python3')"
        )

    def _array(self, text: str) -> np.ndarray:
        try:
            return device_worker.array_from(text)
        except (ValueError, OSError) as exc:
            raise UsageError(f"device {self.name!r} answered with an unreadable array ({exc}): run it again") from exc


@functools.cache
def _worker_source() -> str:
    """The worker program, read once: every call sends it whole."""
    return Path(device_worker.__file__).read_text(encoding="utf-8")


def _json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
