"""``--on 'ssh … python3'`` through a real sshd on 127.0.0.1: a throwaway host key, user key and
config in a temporary folder; the "device" is this machine's Python reached over SSH. Needs
Debian's openssh-server (``.ci/run`` installs it), so it runs in the slow suite."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import load_json, run_cli

pytestmark = pytest.mark.slow  # needs openssh-server, which .ci/run installs

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@pytest.fixture(scope="module")
def ssh_command(tmp_path_factory):
    """An ssh command line that starts a command on 127.0.0.1 through a private sshd, and the sshd process."""
    if not Path(SSHD).is_file() or not shutil.which("ssh-keygen"):
        pytest.fail("openssh-server is not installed: apt-get install openssh-server (.ci/run does)")
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "user.pub").read_text())
    os.chmod(root / "authorized_keys", 0o600)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        f"PidFile {root / 'sshd.pid'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nPermitUserEnvironment no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    ssh = (
        f"ssh -i {root / 'user'} -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        f"-o LogLevel=ERROR -o BatchMode=yes {os.environ.get('USER', 'root')}@127.0.0.1"
    )
    for _ in range(100):
        if subprocess.run([*shlex.split(ssh), "true"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"sshd did not come up: {server.stderr.read().decode()[-500:]}")
    yield ssh
    server.kill()
    server.wait()


def test_bench_and_check_over_ssh(ssh_command, quantized_build, tmp_path):
    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    device = f"{ssh_command} {shlex.quote(sys.executable)} -I"
    checked = run_cli("check", str(folder), "--on", device, "--json", "-")
    assert checked.returncode == 0, checked.stderr
    remote = [r for r in json.loads(checked.stdout)["results"] if r.get("device")]
    assert len(remote) == 3 and all(r["device"]["command"] == device for r in remote)
    benched = run_cli("bench", str(folder), "--iters", "5", "--on", device, "--json", "-")
    assert benched.returncode == 0, benched.stderr
    assert sum(row.get("device") == device for row in json.loads(benched.stdout)["results"]) == 3
    assert load_json(folder / "manifest.json")["benchmarks"][-1]["results"][-1]["device"] == device


def test_a_connection_killed_mid_run_is_one_line_and_changes_nothing(ssh_command, quantized_build, tmp_path):
    """The remote side kills its own ssh session after reading the program: the client loses the connection."""
    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    before = (folder / "manifest.json").read_bytes()
    kill = "import os, signal, sys; sys.stdin.read(); os.kill(os.getppid(), signal.SIGKILL)"
    device = f"{ssh_command} {shlex.quote(sys.executable)} -c {shlex.quote(shlex.quote(kill))}"
    result = run_cli("check", str(folder), "--on", device)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "stopped (exit 255) before answering" in lines[0], result.stderr
    assert (folder / "manifest.json").read_bytes() == before
