"""`edgekit bench BUNDLE --target ssh://...` against an SSH server started here, on localhost only."""

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.device.remote import build_runner, parse_target
from edgekit.errors import InputError

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).is_file() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server/openssh-client not installed (Debian: apt-get install openssh-server)")
    privsep = Path("/run/sshd")
    if not privsep.is_dir():
        if os.geteuid() != 0:
            pytest.skip("sshd needs /run/sshd, which only root can create")
        privsep.mkdir(mode=0o755, parents=True)
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {d / 'host_key'}",
                f"PidFile {d / 'sshd.pid'}",
                f"AuthorizedKeysFile {d / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {getpass.getuser()}",
                "",
            ]
        )
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {proc.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield {
        "url": f"ssh://{getpass.getuser()}@127.0.0.1:{port}",
        "key": d / "client_key",
        "known_hosts": d / "known_hosts",
        "remote_dir": str(d / "remote"),
    }
    proc.terminate()
    proc.wait(timeout=10)


def _remote_args(sshd) -> list[str]:
    return [
        "--target",
        sshd["url"],
        "-i",
        str(sshd["key"]),
        "--ssh-option",
        f"UserKnownHostsFile={sshd['known_hosts']}",
        "--ssh-option",
        "StrictHostKeyChecking=accept-new",
        "--remote-python",
        sys.executable,
        "--remote-dir",
        sshd["remote_dir"],
    ]


def _keys(obj, prefix=""):
    """Every key path in a JSON document (list items merged), for comparing schemas."""
    if isinstance(obj, dict):
        return {k2 for k, v in obj.items() for k2 in {f"{prefix}.{k}"} | _keys(v, f"{prefix}.{k}")}
    if isinstance(obj, list):
        return set().union(*(_keys(v, f"{prefix}[]") for v in obj)) if obj else set()
    return set()


def test_remote_report_has_the_local_schema(sshd, tiny_bundle, tmp_path, run_cli):
    common = ["--runs", "5", "--warmup", "1", "-s", "32", "-t", "1", "-q"]
    r = run_cli("bench", str(tiny_bundle), *common, "-o", str(tmp_path / "local.json"))
    assert r.exit_code == 0, r.stderr
    r = run_cli("bench", str(tiny_bundle), *common, *_remote_args(sshd), "-o", str(tmp_path / "remote.json"))
    assert r.exit_code == 0, r.stderr
    local = json.loads((tmp_path / "local.json").read_text())
    remote = json.loads((tmp_path / "remote.json").read_text())
    ignore = {".results[].runtime_details.providers"}  # adapter-specific extras may differ
    assert _keys(local) - ignore == _keys(remote) - ignore
    assert local["target"] == "local" and remote["target"] == sshd["url"]
    assert remote["environment"]["host"] and remote["environment"]["cpu"]["model"]
    assert [r["name"] for r in remote["results"]] == ["onnx-int8-dynamic", "onnx-fp32"]
    for row in remote["results"]:
        assert row["fidelity"]["selfcheck_cosine_min"] > 0.9999
        assert row["latency_ms"]["p50"] > 0
    # the bundle really was copied there, with the runner beside it
    copied = list(Path(sshd["remote_dir"]).glob("*/bundle/bundle.json"))
    assert len(copied) == 1 and (copied[0].parent.parent / "runner.pyz").is_file()
    # an edgekit report gate reads it like any other report
    r = run_cli("report", str(tmp_path / "remote.json"))
    assert r.exit_code == 0 and "onnx-int8-dynamic" in r.output


def test_remote_errors_are_one_line(sshd, tiny_bundle, run_cli):
    args = _remote_args(sshd)
    args[args.index(sys.executable)] = "/nonexistent/python3"
    r = run_cli("bench", str(tiny_bundle), "--runs", "2", "-q", *args)
    assert r.exit_code == 2 and "no /nonexistent/python3 on the device" in r.stderr
    r = run_cli(
        "bench", str(tiny_bundle), "-q", "--target", "ssh://nobody@127.0.0.1:1", "--ssh-option", "ConnectTimeout=3"
    )
    assert r.exit_code == 2 and "ssh://nobody@127.0.0.1:1" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "url,expected",
    [
        ("ssh://pi@board.local:2222", ("board.local", "pi", 2222)),
        ("ssh://10.0.0.7", ("10.0.0.7", None, 22)),
        ("ssh://me@[::1]:22", ("::1", "me", 22)),
    ],
)
def test_parse_target(url, expected):
    t = parse_target(url)
    assert (t.host, t.user, t.port) == expected


@pytest.mark.parametrize("url", ["http://host", "ssh://", "ssh://a@b:99999", "ssh://a b"])
def test_parse_target_rejects(url):
    with pytest.raises(InputError):
        parse_target(url)


def test_runner_runs_without_edgekit_installed(tiny_bundle, tmp_path):
    """The zipapp alone (no entry points, no installed edgekit) benchmarks a bundle."""
    runner = tmp_path / "runner.pyz"
    runner.write_bytes(build_runner())
    settings = {
        "settings": {"batch_size": 1, "seq_len": 16, "threads": 1, "warmup": 1, "runs": 3, "fidelity_samples": 16}
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-I", str(runner), str(tiny_bundle), "--settings", json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {r["name"] for r in report["results"]} == {"onnx-int8-dynamic", "onnx-fp32"}


def test_unknown_host_key_is_one_line_with_what_to_run(sshd, tiny_bundle, tmp_path, run_cli):
    known = tmp_path / "known_hosts"  # a known_hosts that does not list the device
    known.write_text("")
    port = sshd["url"].rsplit(":", 1)[1]
    args = ["--target", sshd["url"], "-i", str(sshd["key"]), "--ssh-option", f"UserKnownHostsFile={known}"]
    r = run_cli("bench", str(tiny_bundle), "--runs", "2", "-q", *args)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "host key is not known here" in r.stderr
    assert f"ssh-keyscan -p {port} 127.0.0.1 >> {known}" in r.stderr
    assert "StrictHostKeyChecking=accept-new" in r.stderr
