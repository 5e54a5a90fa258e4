"""Rebuild qa/{train,test}.jsonl from the English part of XQuAD (CC BY-SA 4.0).

    # xquad.en.json, sha256 e4c57d1c9143aaa1c5d265ba5987a65f4e69528d2a98f29d6e75019b10344f29,
    # from the GitHub repository google-deepmind/xquad at commit 7d30520c717524000f0d9d2f9c10a069acd9d285
    python calibration_data/qa/build_qa.py xquad.en.json

XQuAD (Artetxe et al., 2020) is 240 paragraphs from 48 Wikipedia articles of the
SQuAD v1.1 development set with 1,190 question/answer pairs, in SQuAD v1.1 JSON.
Every question has one answer, a span of its paragraph. Each question becomes
``{"id", "question", "context", "answers": [{"text", "answer_start"}]}``, with
the SQuAD question id; paragraphs longer than 1,500 characters are dropped so
that a context fits 256-384 tokens. Every answer_start is checked to index its
text in the context. The split keeps whole articles on one side, in the order
of the sha256 of the article title, the test side taking articles until it
holds at least 20% of the questions.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
MAX_CONTEXT_CHARS = 1500
TEST_SHARE = 0.20
SOURCE_SHA256 = "e4c57d1c9143aaa1c5d265ba5987a65f4e69528d2a98f29d6e75019b10344f29"


def article_rows(article: dict) -> list[dict]:
    rows = []
    for paragraph in article["paragraphs"]:
        context = paragraph["context"]
        if len(context) > MAX_CONTEXT_CHARS:
            continue
        for qa in paragraph["qas"]:
            answers = [{"text": a["text"], "answer_start": int(a["answer_start"])} for a in qa["answers"]]
            for a in answers:
                start = a["answer_start"]
                if not a["text"] or context[start : start + len(a["text"])] != a["text"]:
                    raise ValueError(f"{qa['id']}: answer {a['text']!r} is not at {start} in its context")
            if answers:
                question = qa["question"].strip()
                rows.append({"id": qa["id"], "question": question, "context": context, "answers": answers})
    return rows


def main(source: str) -> None:
    raw = Path(source).read_bytes()
    if hashlib.sha256(raw).hexdigest() != SOURCE_SHA256:
        print(f"warning: {source} is not the xquad.en.json this folder was built from", file=sys.stderr)
    articles = [(a["title"], article_rows(a)) for a in json.loads(raw)["data"]]
    total = sum(len(rows) for _, rows in articles)
    order = sorted(articles, key=lambda a: hashlib.sha256(a[0].encode()).hexdigest())
    test_titles: set[str] = set()
    in_test = 0
    for title, rows in order:
        if in_test >= TEST_SHARE * total:
            break
        test_titles.add(title)
        in_test += len(rows)
    for split in ("train", "test"):
        chosen = [(t, rows) for t, rows in articles if (t in test_titles) == (split == "test")]
        rows = [r for _, article in chosen for r in article]
        out = HERE / f"{split}.jsonl"
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        contexts = len({r["context"] for r in rows})
        print(f"qa/{out.name}: {len(rows)} questions on {contexts} paragraphs from {len(chosen)} articles")


if __name__ == "__main__":
    main(sys.argv[1])
