"""Running a LiteRT (.tflite) artifact: the interpreter, with int8 I/O converted at the edges."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def io_types(data: bytes) -> dict:
    interpreter = _interpreter(data, 1)
    return {
        "input": str(np.dtype(interpreter.get_input_details()[0]["dtype"])),
        "output": str(np.dtype(interpreter.get_output_details()[0]["dtype"])),
    }


def _interpreter(data: bytes, threads: int | None):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def runner(data: bytes, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Logits (float) for N×3×H×W float32 images, one image per call; int8 I/O converted at the edges."""
    interpreter = _interpreter(data, threads)
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(images: np.ndarray) -> np.ndarray:
        rows = []
        for image in images:
            interpreter.set_tensor(source["index"], _to(source, image[None]))
            interpreter.invoke()
            rows.append(_from(sink, interpreter.get_tensor(sink["index"])))
        return np.concatenate(rows)

    return run


def _to(detail: dict, value: np.ndarray) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return value.astype(np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale) + zero, info.min, info.max).astype(dtype)


def _from(detail: dict, value: np.ndarray) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return value.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)
