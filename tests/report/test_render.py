"""The HTML report opened in a real browser: headless Chromium, network off, plots drawn."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium)")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    # no network at all: every host name resolves to nothing, and no proxy
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def html_report(tiny_compressed, tmp_path_factory):
    """compress report + a sweep over sequence lengths, rendered by `edgekit report --html`."""
    from edgekit.cli import main

    d = tmp_path_factory.mktemp("html")
    for args in (
        [
            "bench",
            str(tiny_compressed / "onnx-fp32"),
            str(tiny_compressed / "onnx-int8-dynamic"),
            "-s",
            "16,32,64",
            "-t",
            "1",
            "--runs",
            "5",
            "--warmup",
            "1",
            "-q",
            "-o",
            str(d / "sweep.json"),
        ],
        ["report", str(tiny_compressed / "report.json"), str(d / "sweep.json"), "--html", str(d / "r.html")],
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 0
    return d / "r.html"


def test_html_needs_no_network(html_report):
    text = html_report.read_text()
    urls = set(re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text))
    assert not urls  # no scripts, stylesheets, images or fonts to fetch
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) <= {"http://www.w3.org/2000/svg"}  # only the SVG namespace


def test_chromium_renders_every_plot(html_report, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", html_report.as_uri())
    assert proc.returncode == 0, proc.stderr[-500:]
    dom = proc.stdout
    n_rows = dom.count("<tr>") - 1
    assert n_rows >= 5
    scatter = re.search(r'<svg id="plot-pareto".*?</svg>', dom, re.S).group(0)
    assert scatter.count('class="point"') >= 3 and 'class="pareto"' in scatter
    size = re.search(r'<svg id="plot-size".*?</svg>', dom, re.S).group(0)
    assert size.count('class="bar"') >= 3
    sweep = re.search(r'<svg id="plot-sweep".*?</svg>', dom, re.S).group(0)
    assert sweep.count('class="series"') == 2  # fp32 and int8 over 16/32/64


def test_screenshot_shows_drawn_plots(html_report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2200", html_report.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-500:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2200)
    colors = {c for _, c in img.getcolors(maxcolors=1 << 20)}
    plot_blue, plot_red = (0x1F, 0x77, 0xB4), (0xD6, 0x27, 0x28)  # the first two series colours
    assert plot_blue in colors and plot_red in colors
