"""manifest.json: reading, writing and validating the evidence that travels with every folder.

What a manifest holds is defined once, in ``folder.schema``; what goes into each record is
``folder.records``'. Every manifest read from disk is validated against that definition, so a
later stage never trusts a field the schema does not promise.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ghostexport.base.errors import UsageError
from ghostexport.base.files import atomic_write_text, read_bounded
from ghostexport.folder.schema import SCHEMA_VERSION, Manifest, manifest_adapter

MANIFEST_NAME = "manifest.json"


def write_manifest(folder: Path, manifest: Manifest) -> None:
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


#: far above any real manifest (history, checks and benchmarks included), far below memory
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest, refused (exit 2) unless it is a bounded regular file that follows the schema."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = read_bounded(path, MAX_MANIFEST_BYTES, "manifest")
    except FileNotFoundError as exc:
        raise UsageError(
            f"{folder} has no {MANIFEST_NAME}: is it a ghostexport build folder? Run ghostexport build first"
        ) from exc
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"{path} is unreadable ({exc}): rebuild the folder with ghostexport build") from exc
    problem = manifest_problem(manifest)
    if problem:
        raise UsageError(f"{path} is not a valid ghostexport manifest ({problem}): rebuild the folder")
    return manifest


def manifest_problem(manifest: Any) -> str | None:
    """The first way ``manifest`` breaks the schema, in a few words naming the key, or None."""
    from pydantic import ValidationError

    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    if manifest.get("schema") != SCHEMA_VERSION:
        return f"schema {manifest.get('schema')!r}; this ghostexport reads schema {SCHEMA_VERSION}"
    try:
        _adapter().validate_python(manifest)
    except ValidationError as exc:
        return _describe(exc.errors()[0])
    except RecursionError:
        return "nested too deeply"
    return None


def _describe(error: dict) -> str:
    """One pydantic error as ``unknown key 'x' at a.b`` or ``a.b.c: what is wrong``."""
    where = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        return f"unknown key '{where[-1]}'" + (f" at {'.'.join(where[:-1])}" if where[:-1] else "")
    if error["type"] == "missing":
        return f"{'.'.join(where)} missing"
    return f"{'.'.join(where)}: {error['msg'].lower()}"


@functools.cache
def _adapter():
    return manifest_adapter()


def manifest_schema() -> dict:
    """The published JSON Schema of manifest.json, generated from the typed model (``info --schema``)."""
    schema = _adapter().json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "ghostexport manifest"}
