"""The program ghostexport sends to a device: it runs there, on that device's Python.

Self-contained on purpose: it imports only the standard library, numpy and the runtime that
runs the artifact (onnxruntime), never ghostexport or torch, because the device has neither.
``runtime.device`` appends one request to this file's text and pipes the whole program into
the device's interpreter (``ssh board python3``, ``docker run -i … python3``, ``qemu-aarch64
… python3``); the answer is one line on stdout, ``GHOSTEXPORT-RESULT <json>``, or
``GHOSTEXPORT-ERROR <json>`` with what went wrong. Arrays travel as base64 ``.npy`` bytes,
read with ``allow_pickle=False``.
"""

import base64
import io
import json
import platform
import sys
import time

RESULT, ERROR = "GHOSTEXPORT-RESULT ", "GHOSTEXPORT-ERROR "
#: x86 flags that an ARM CPU never reports: seen in an aarch64 process, the CPU is emulated (older qemu-user)
X86_ONLY_FLAGS = {"sse2", "ssse3", "avx", "avx2"}
#: the CPU implementer qemu-user's synthetic /proc/cpuinfo reports; every real ARM vendor has its own code
QEMU_IMPLEMENTER = "0x00"
INTERESTING_FLAGS = {"asimd", "asimddp", "sve", "sve2", "i8mm", "bf16", "avx2", "avx512f", "avx512_vnni", "avx_vnni"}


def cpu_info():
    """(model name, flags, ARM implementer code or None) from /proc/cpuinfo where there is one."""
    model, flags, implementer = platform.processor() or "unknown", [], None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware") and model in ("unknown", ""):
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = value.split()
                elif key == "cpu implementer" and implementer is None:
                    implementer = value.strip()
    except OSError:
        pass
    return model, flags, implementer


def describe():
    """Where this runs: architecture, CPU, OS, Python and runtime versions, and whether it is emulated."""
    import numpy

    model, flags, implementer = cpu_info()
    machine = platform.machine()
    arm = machine.lower() in ("aarch64", "arm64")
    emulated = arm and (bool(X86_ONLY_FLAGS & set(flags)) or implementer == QEMU_IMPLEMENTER)
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "machine": machine,
        "cpu": model,
        "cpu_flags": sorted(INTERESTING_FLAGS & set(flags)),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": ort_version,
        "emulated": emulated,
    }


def array_from(text):
    import numpy

    return numpy.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def array_to(value):
    import numpy

    buffer = io.BytesIO()
    numpy.save(buffer, numpy.ascontiguousarray(value), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def session(artifact, threads):
    try:
        import onnxruntime
    except ImportError:
        raise Failure("missing-runtime", "onnxruntime is not installed on the device") from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(base64.b64decode(artifact), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types for an opset or operator it lacks
        raise Failure("cannot-load", f"onnxruntime {onnxruntime.__version__} cannot load it: {exc}") from None


def logits(request):
    """The artifact's outputs for the given inputs, run ``batch`` images at a time."""
    import numpy

    runner = session(request["artifact"], request.get("threads"))
    name = runner.get_inputs()[0].name
    inputs, batch = array_from(request["inputs"]), request["batch"]
    outputs = [runner.run(None, {name: inputs[i : i + batch]})[0] for i in range(0, len(inputs), batch)]
    return {"logits": array_to(numpy.concatenate(outputs).astype(numpy.float32))}


def latency(request):
    """Latencies in ms of each artifact, interleaved call by call so that a change of load hits all alike."""
    import numpy

    images = numpy.random.default_rng(1).standard_normal(request["shape"], dtype=numpy.float32)
    runners = {}
    for label, artifact in request["artifacts"].items():
        runner = session(artifact, request.get("threads"))
        runners[label] = (runner, {runner.get_inputs()[0].name: images})
    for runner, feed in runners.values():
        for _ in range(request["warmup"]):
            runner.run(None, feed)
    times = {label: [] for label in runners}
    for _ in range(request["iterations"]):
        for label, (runner, feed) in runners.items():
            start = time.perf_counter()
            runner.run(None, feed)
            times[label].append((time.perf_counter() - start) * 1e3)
    return {"latency_ms": times}


class Failure(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def main(text):
    try:
        request = json.loads(text)
        answer = {"device": describe()}
        if request["kind"] == "logits":
            answer.update(logits(request))
        elif request["kind"] == "latency":
            answer.update(latency(request))
        sys.stdout.write(RESULT + json.dumps(answer) + "\n")
    except Failure as failure:
        sys.stdout.write(ERROR + json.dumps({"kind": failure.kind, "message": str(failure)}) + "\n")
        sys.exit(3)
    except ImportError as exc:
        sys.stdout.write(ERROR + json.dumps({"kind": "missing-runtime", "message": str(exc)}) + "\n")
        sys.exit(3)
    sys.stdout.flush()
