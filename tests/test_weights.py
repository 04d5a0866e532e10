"""--weights: the real download code against a server on 127.0.0.1 that the test starts."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest
import torch

from ghostexport.model.arch import create_model

from .conftest import SMALL, load_json, run_cli, visible_entries


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def served(tmp_path):
    """A checkpoint served over HTTP from a local folder; yields (base url, file path)."""
    root = tmp_path / "www"
    root.mkdir()
    checkpoint = root / "ghostnet_050-c10.pth"
    torch.save({"state_dict": create_model("ghostnet", 0.5, 10, seed=4).state_dict()}, checkpoint)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", checkpoint
    finally:
        server.shutdown()
        server.server_close()


def test_url_is_downloaded_cached_verified_and_recorded(served, tmp_path):
    base, checkpoint = served
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    env = {"GHOSTEXPORT_CACHE": str(cache)}
    url = f"{base}/{checkpoint.name}#sha256={digest}"
    result = run_cli("build", *SMALL, "--weights", url, "--out", str(tmp_path / "m"), env=env)
    assert result.returncode == 0, result.stderr
    cached = next((cache / "weights").glob(f"*-{checkpoint.name}"))
    assert cached.read_bytes() == checkpoint.read_bytes()
    manifest = load_json(tmp_path / "m" / "ghostnet_050-c10-r64" / "manifest.json")
    assert manifest["model"]["checkpoint"]["sha256"] == digest and manifest["model"]["num_classes"] == 10

    checkpoint.unlink()  # the second build must come from the cache alone
    again = run_cli("build", *SMALL, "--weights", url, "--out", str(tmp_path / "m2"), env=env)
    assert again.returncode == 0, again.stderr


def test_wrong_hash_is_refused_and_not_cached(served, tmp_path):
    base, checkpoint = served
    cache = tmp_path / "cache"
    result = run_cli(
        "build",
        *SMALL,
        "--weights",
        f"{base}/{checkpoint.name}#sha256={'0' * 64}",
        "--out",
        str(tmp_path / "m"),
        env={"GHOSTEXPORT_CACHE": str(cache)},
    )
    assert result.returncode == 2 and "expected 000" in result.stderr
    assert visible_entries(cache / "weights") == []  # no partial or unverified file left


def test_unreachable_url_exit_2_with_the_fix(served, tmp_path):
    base, _ = served
    result = run_cli(
        "build",
        *SMALL,
        "--weights",
        f"{base}/missing.pth",
        "--out",
        str(tmp_path / "m"),
        env={"GHOSTEXPORT_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 2
    assert "could not download" in result.stderr and "--checkpoint PATH" in result.stderr
    assert "put it at " + str(tmp_path / "cache" / "weights") in result.stderr


def test_registry_entry_fixes_variant_and_width(tmp_path):
    result = run_cli("build", "--weights", "ghostnet_100.in1k", "--width", "0.5", "--out", str(tmp_path))
    assert result.returncode == 2 and "--width 0.5 contradicts the weights" in result.stderr


def test_registry_entries_are_complete_and_distinct():
    from ghostexport.model.arch import VARIANTS
    from ghostexport.model.weights import REGISTRY

    assert {"ghostnet_100.in1k", "ghostnetv2_100.in1k"} <= set(REGISTRY)
    for name, spec in REGISTRY.items():
        assert spec.variant in VARIANTS and spec.width > 0 and spec.url.startswith("https://")
        assert spec.top1 is not None and 60 < spec.top1 < 90, name
    assert len({spec.url for spec in REGISTRY.values()}) == len(REGISTRY)
