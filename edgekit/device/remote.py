"""Benchmarks on a device over SSH: ``edgekit bench BUNDLE --target ssh://user@host[:port]``.

What happens, with the system ``ssh`` client (keys, agents and ~/.ssh/config
work as for any ssh command):

1. the bundle is streamed as a tar to ``~/.cache/edgekit-remote/<bundle id>/``
   on the device (``--remote-dir`` to choose), unless an earlier run left it there complete;
2. a small runner (a zipapp of edgekit's runtime-side modules, ~200 kB) is
   copied beside it;
3. ``python3 runner.pyz`` benchmarks the bundle there and prints the report,
   which comes back in the same schema as a local ``edgekit bench``, with
   ``target`` naming the device and ``environment`` describing it.

Nothing is installed on the device: it needs Python 3.10+, numpy,
``tokenizers`` and the runtime of the variants; the runner says everything
that is missing in one line, and benchmarks the variants whose runtime is
there (the report's ``skipped`` names the others). A host key ssh does not
know, or a refused key, is one line saying what to run.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.device.bundle import BUNDLE_FILE, Bundle
from edgekit.errors import ArtifactError, GateFailed, InputError, InternalError, RemoteError

REMOTE_ROOT = ".cache/edgekit-remote"
_TARGET = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@/:\s]+)(?::(?P<port>\d{1,5}))?/?$")


@dataclass(frozen=True)
class SSHTarget:
    host: str
    user: str | None = None
    port: int = 22

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def url(self) -> str:
        return f"ssh://{self.destination}:{self.port}"


def parse_target(url: str) -> SSHTarget:
    m = _TARGET.match(url)
    if not m:
        raise InputError(f"target {url!r} is not ssh://[user@]host[:port]")
    port = int(m["port"] or 22)
    if not 0 < port < 65536:
        raise InputError(f"target {url!r}: port {port} is out of range")
    return SSHTarget(host=m["host"].strip("[]"), user=m["user"], port=port)


def build_runner() -> bytes:
    """The runner zipapp: edgekit's and the runtime adapters' modules, plus tqdm (pure Python)."""
    import edgekit
    import edgekit_runtimes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__main__.py", "import sys\nfrom edgekit.device.remote_runner import main\nsys.exit(main())\n")
        for pkg in (edgekit, edgekit_runtimes):
            if pkg.__file__ is None:  # a namespace package (a broken install): no directory to copy
                raise InternalError(f"{pkg.__name__} has no __init__.py; reinstall edgekit")
            root = Path(pkg.__file__).parent
            for f in sorted(root.rglob("*.py")):
                z.write(f, f"{root.name}/{f.relative_to(root).as_posix()}")
        try:
            import tqdm

            root = Path(tqdm.__file__).parent
            for f in sorted(root.rglob("*.py")):
                z.write(f, f"tqdm/{f.relative_to(root).as_posix()}")
        except ImportError:  # pragma: no cover - tqdm is a dependency of edgekit
            pass
    return buf.getvalue()


def _ssh_hint(stderr: bytes, runner: SSHRunner) -> str | None:
    """One line for an SSH failure that needs the user to act before anything can run (an unknown or changed
    host key, a refused key), saying what to run; None for any other failure."""
    text = stderr.decode(errors="replace")
    t = runner.target
    known = runner.known_hosts or "~/.ssh/known_hosts"
    where = t.host if t.port == 22 else f"[{t.host}]:{t.port}"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (
            f"{t.url()}: the device's host key changed since it was recorded in {known} (a reinstalled device, "
            f"or someone in between); once you have checked the new key: ssh-keygen -f {known} -R '{where}'"
        )
    if "Host key verification failed" in text or re.search(r"No \S+ host key is known", text):
        port = f"-p {t.port} " if t.port != 22 else ""
        return (
            f"{t.url()}: the device's host key is not known here (Host key verification failed); record it "
            f"with: ssh-keyscan {port}{t.host} >> {known} (check its fingerprint), or pass "
            "--ssh-option StrictHostKeyChecking=accept-new to trust it on first use"
        )
    if "Permission denied (publickey" in text:
        return (
            f"{t.url()}: the device refused the SSH key (Permission denied); pass the key it accepts with "
            f"-i/--identity, or add yours to its ~/.ssh/authorized_keys (ssh-copy-id -p {t.port} {t.destination})"
        )
    return None


def _last_line(stderr: bytes, default: str) -> str:
    """The last non-empty line a remote command wrote to stderr (its error message)."""
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else default


class SSHRunner:
    def __init__(
        self,
        target: SSHTarget,
        *,
        identity: Path | None = None,
        options: tuple[str, ...] = (),
        python: str = "python3",
        remote_root: str = REMOTE_ROOT,
        timeout_s: int = 1800,
    ) -> None:
        if shutil.which("ssh") is None:
            raise RemoteError("no ssh client here (Debian: apt-get install openssh-client)")
        self.target, self.python, self.root, self.timeout_s = target, python, remote_root, timeout_s
        self.base = ["ssh", "-p", str(target.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
        if identity is not None:
            self.base += ["-i", str(identity)]
        self.known_hosts: str | None = None  # a UserKnownHostsFile the user named: where a host key goes
        for opt in options:
            self.base += ["-o", opt]
            key, _, value = opt.partition("=")
            if key.strip().lower() == "userknownhostsfile" and value.strip():
                self.known_hosts = value.strip().split()[0]

    def _ssh(self, command: str, data: bytes | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [*self.base, self.target.destination, "--", command],
                input=data,
                capture_output=True,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.target.url()}: no answer within {self.timeout_s} s") from None

    def _checked(self, command: str, data: bytes | None = None, what: str = "") -> bytes:
        proc = self._ssh(command, data)
        if proc.returncode != 0:
            hint = _ssh_hint(proc.stderr, self) if proc.returncode == 255 else None
            if hint:
                raise RemoteError(hint)
            raise RemoteError(
                f"{self.target.url()}: {what or 'command'} failed ({_last_line(proc.stderr, str(proc.returncode))})"
            )
        return proc.stdout

    def upload_bundle(self, bundle: Bundle) -> str:
        """Copy the bundle (unless already there, complete) and the runner; returns the remote directory."""
        bundle_id = hashlib.sha256((bundle.path / BUNDLE_FILE).read_bytes()).hexdigest()[:20]
        remote = f"{self.root}/{bundle_id}"
        q = shlex.quote(remote)
        present = self._checked(f"test -f {q}/bundle/.complete && echo yes || echo no", what="connect").strip()
        if present != b"yes":
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for name in [BUNDLE_FILE, *sorted(bundle.meta["files"])]:
                    tar.add(bundle.path / name, arcname=name, recursive=False)
            self._checked(
                f"rm -rf {q}/bundle {q}/incoming && mkdir -p {q}/incoming && tar -xf - -C {q}/incoming "
                f"&& touch {q}/incoming/.complete && mv {q}/incoming {q}/bundle",
                buf.getvalue(),
                what="copying the bundle",
            )
        self._checked(f"cat > {q}/runner.pyz", build_runner(), what="copying the runner")
        return remote

    def bench(self, bundle: Bundle, options: dict) -> dict:
        remote = self.upload_bundle(bundle)
        q = shlex.quote(remote)
        proc = self._ssh(
            f"{shlex.quote(self.python)} {q}/runner.pyz {q}/bundle --settings {shlex.quote(json.dumps(options))}"
        )
        if proc.returncode != 0:
            hint = _ssh_hint(proc.stderr, self) if proc.returncode == 255 else None
            if hint:
                raise RemoteError(hint)
            msg = f"{self.target.url()}: {_last_line(proc.stderr, f'runner exited with {proc.returncode}')}"
            if proc.returncode == 3:
                raise GateFailed(msg)
            if proc.returncode == 127:
                raise RemoteError(f"{self.target.url()}: no {self.python} on the device (--remote-python)")
            raise RemoteError(msg)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise RemoteError(f"{self.target.url()}: the runner printed no report") from None
        if not isinstance(report, dict) or "results" not in report:
            raise ArtifactError(f"{self.target.url()}: the runner's report is malformed")
        report["target"] = self.target.url()
        return report
