"""Correctness of the runtime-only install and bundles on aarch64 Linux, under qemu-user emulation.

    python benchmarks/arm_emulation.py --bundle B1 [--bundle B2 ...] [--cpu cortex-a72] [--also-cpu max]

No ARM hardware here, so:

1. an arm64 Debian bookworm root is made with ``debootstrap --foreign`` (first
   stage only: packages unpacked, nothing configured, no root privileges used
   inside it) plus Debian's python3.11; cached under ~/.cache/edgekit/arm64;
2. edgekit's wheel with the ``onnxruntime`` and ``litert`` extras is installed
   for aarch64 (``pip install --target --platform manylinux_*_aarch64``: the
   real aarch64 wheels of onnxruntime, ai-edge-litert, tokenizers, numpy);
3. every bundle's ``edgekit run --check`` runs in that root through
   ``qemu-aarch64-static -L ROOT``: the outputs must reproduce those recorded
   when the bundle was made, or (other int8 kernels) be as close to fp32 as
   recorded.

qemu-user 7.2 shows the host's x86 /proc/cpuinfo to the guest, and ONNX
Runtime's CPU detection (pytorch/cpuinfo) crashes on it at import; the root
therefore carries a /proc/cpuinfo describing the emulated CPU (qemu's ``-L``
serves it from there). Latency under emulation means nothing and is not
recorded; only correctness and how long the check took. Needs root for
debootstrap, and Debian's debootstrap and qemu-user-static (``--install-tools``
installs them with apt-get).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{v}_aarch64" for v in range(17, 37))]
TOOLS = {"debootstrap": "debootstrap", "qemu-aarch64-static": "qemu-user-static", "dpkg-deb": "dpkg"}
# what the emulated CPUs look like to software reading /proc/cpuinfo (implementer 0x41 = Arm)
CPUINFO = {
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3"),
    "max": (
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp "
        "sve asimdfhm i8mm bf16",
        "0x0",
        "0xd40",
        "0",
    ),
}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def ensure_tools(install: bool) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing and install:
        run(["apt-get", "update", "-q"])
        run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *sorted({TOOLS[t] for t in missing})],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        sys.exit(
            f"arm_emulation: missing {', '.join(missing)}: apt-get install "
            f"{' '.join(sorted({TOOLS[t] for t in missing}))} (or pass --install-tools)"
        )


def make_root(root: Path) -> float:
    """An arm64 Debian root with python3.11, unpacked only (no second stage, no chroot)."""
    python = root / "usr" / "bin" / "python3.11"
    if python.is_file():
        return 0.0
    t0 = time.perf_counter()
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    run(
        [
            "debootstrap",
            "--arch=arm64",
            "--foreign",
            "--variant=minbase",
            "--include=python3.11,libpython3.11-stdlib,ca-certificates",
            SUITE,
            str(partial),
            MIRROR,
        ]
    )
    for deb in sorted((partial / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        run(["dpkg-deb", "-x", str(deb), str(partial)])
    if not (partial / "usr" / "bin" / "python3.11").is_file():
        sys.exit("arm_emulation: debootstrap did not provide python3.11")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return time.perf_counter() - t0


def write_cpuinfo(root: Path, cpu: str) -> None:
    features, variant, part, revision = CPUINFO.get(cpu, CPUINFO["cortex-a72"])
    block = (
        f"processor\t: {{n}}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n"
    )
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text("".join(block.format(n=n) for n in range(os.cpu_count() or 1)))


def install_site(site: Path) -> float:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as wheels:
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, str(REPO)])
        wheel = next(Path(wheels).glob("edgekit-*.whl"))
        shutil.rmtree(site, ignore_errors=True)
        platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--target",
                str(site),
                *platform_args,
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
                "--only-binary=:all:",
                f"{wheel}[onnxruntime,litert]",
            ]
        )
    return time.perf_counter() - t0


def guest(
    root: Path, site: Path, cpu: str, args: list[str], timeout: int = 1800
) -> tuple[subprocess.CompletedProcess, float]:
    write_cpuinfo(root, cpu)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(site),
        "PYTHONNOUSERSITE": "1",
        "HOME": str(root / "root"),
        "EDGEKIT_CACHE": str(root / "root" / ".cache" / "edgekit"),
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["qemu-aarch64-static", "-cpu", cpu, "-L", str(root), str(root / "usr/bin/python3.11"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    return proc, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", action="append", type=Path, required=True)
    ap.add_argument("--cpu", default="cortex-a72", help="qemu CPU model for the check (default: Raspberry Pi 4's)")
    ap.add_argument("--also-cpu", action="append", default=[], help="more CPU models, recorded but not gating")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "edgekit" / "arm64")
    ap.add_argument("--install-tools", action="store_true")
    ap.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "arm_emulation.json")
    args = ap.parse_args()

    t_all = time.perf_counter()
    ensure_tools(args.install_tools)
    args.cache.mkdir(parents=True, exist_ok=True)
    root, site = args.cache / "root", args.cache / "site"
    root_s = make_root(root)
    site_s = install_site(site)
    probe = (
        "import platform, json, importlib.util as u; print(json.dumps({'machine': platform.machine(), "
        "'heavy': [m for m in ('torch', 'tensorflow', 'transformers') if u.find_spec(m)]}))"
    )
    proc, _ = guest(root, site, args.cpu, ["-c", probe])
    facts = json.loads(proc.stdout)
    checks = []
    for cpu in [args.cpu, *args.also_cpu]:
        for bundle in args.bundle:
            proc, secs = guest(root, site, cpu, ["-m", "edgekit", "run", str(bundle), "--check"])
            try:
                out = json.loads(proc.stdout.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                out = {"check": {"passed": False, "verdict": (proc.stderr.strip().splitlines() or ["no output"])[-1]}}
            row = {
                "cpu": cpu,
                "bundle": str(bundle),
                "variant": out.get("variant"),
                "runtime": out.get("runtime"),
                "exit_code": proc.returncode,
                "seconds": round(secs, 1),
                "gating": cpu == args.cpu,
                **out["check"],
            }
            checks.append(row)
            print(json.dumps(row), flush=True)
    passed = facts["machine"] == "aarch64" and not facts["heavy"] and all(c["passed"] for c in checks if c["gating"])
    result = {
        "guest": {
            **facts,
            "debian": SUITE,
            "python": "3.11 (Debian arm64)",
            "emulator": run(["qemu-aarch64-static", "--version"]).stdout.splitlines()[0],
        },
        "root_build_s": round(root_s, 1),
        "install_s": round(site_s, 1),
        "total_s": round(time.perf_counter() - t_all, 1),
        "site_mb": round(sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6, 1),
        "checks": checks,
        "passed": passed,
        "note": "latency under emulation means nothing and is not recorded",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "checks"}, indent=2))
    return 0 if passed else 3


if __name__ == "__main__":
    sys.exit(main())
