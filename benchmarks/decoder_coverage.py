"""Decoder coverage: six architecture families (random-weight twins built from configs) x exporter x precision.

    python benchmarks/decoder_coverage.py [--output benchmarks/results/decoder_coverage.json]

For GPT-2, Llama, Qwen2, Phi-3, Gemma and SmolLM-style configs (edgekit.testing.DECODER_FAMILIES), every cell
is a real run:
- ONNX, torch export (edgekit's KV-cache trace) and ONNX Runtime GenAI's builder (fused; where it builds the
  architecture): fp32 parity against PyTorch (prefill and 16 decode steps, max abs logit difference; greedy
  continuation identical);
- int8 dynamic and int4 RTN (block 32, int8 compute) of each: mean next-token log-likelihood on 2 x 128
  held-out tokens against the fp32 graph's (|delta| in nats) and greedy agreement over 16 tokens.
- LiteRT (litert-torch's generative converter, prefill/decode signatures, KV cache of 256): fp32 parity as above;
  int8 (dynamic_int8) and int4 (dynamic_int4_block32) quantized at conversion, scored as above against the fp32
  .tflite; families its decoder builder cannot express are reported with the reason.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def greedy(dec, ids, n=16):
    from edgekit.generation.runtime import GenerationOptions, stream

    dec.eos = ()
    return list(stream(dec, ids, GenerationOptions(max_new_tokens=n)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=HERE / "results" / "decoder_coverage.json")
    args = ap.parse_args()
    from edgekit.generation.pipeline import load_causal_lm, parity
    from edgekit.generation.quantize import quantize_int4, quantize_int8
    from edgekit.generation.runtime import open_decoder
    from edgekit.testing import DECODER_FAMILIES, make_tiny_decoder
    from edgekit_converters import genai_builder, litert_decoder
    from edgekit_converters.onnx_decoder import export_decoder

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in DECODER_FAMILIES:
            ckpt = make_tiny_decoder(Path(tmp) / family, family)
            model = load_causal_lm(ckpt)
            ids = np.arange(7, 7 + 256).reshape(2, 128) % model.config.vocab_size
            prompt = np.arange(3, 27)
            config = json.loads((ckpt / "config.json").read_text())
            for exporter in ("torch", "genai-builder", "litert-torch"):
                row: dict = {"family": family, "architecture": model.config.architectures[0], "exporter": exporter}
                d = Path(tmp) / f"{family}-{exporter}"
                d.mkdir()
                why = {"genai-builder": genai_builder.supported, "litert-torch": litert_decoder.supported}.get(
                    exporter, lambda c: None
                )(config)
                if why:
                    row["fp32"] = {"status": "not built", "why": why}
                    rows.append(row)
                    continue
                try:
                    if exporter == "torch":
                        export_decoder(model, d)
                    elif exporter == "genai-builder":
                        genai_builder.build(ckpt, d)
                    else:
                        litert_decoder.convert(ckpt, d, "none", kv_cache_max_len=256)
                    rec = parity(model, d, prompt, atol=1e-4)
                    row["fp32"] = {
                        "status": "ok",
                        **{k: rec[k] for k in ("prefill_max_abs_diff", "decode_max_abs_diff", "greedy_identical")},
                    }
                except Exception as err:  # noqa: BLE001  (a cell that fails is reported, not hidden)
                    row["fp32"] = {"status": "failed", "why": str(err).splitlines()[0][:200]}
                    rows.append(row)
                    continue
                ref = open_decoder(d)
                ref_lp = float(ref.token_logprobs(ids).mean())
                ref_greedy = greedy(ref, prompt)
                lite = exporter == "litert-torch"
                for precision, fn in (("int8", quantize_int8), ("int4", quantize_int4)):
                    q = Path(tmp) / f"{family}-{exporter}-{precision}"
                    try:
                        if lite:  # litert-torch quantizes while converting (ai-edge-quantizer recipes)
                            quant = "dynamic_int8" if precision == "int8" else "dynamic_int4_block32"
                            q.mkdir()
                            litert_decoder.convert(ckpt, q, quant, kv_cache_max_len=256)
                        else:
                            fn(d, q)
                        dec = open_decoder(q)
                        g = greedy(dec, prompt)
                        same = next((i for i, (a, b) in enumerate(zip(g, ref_greedy)) if a != b), len(g))
                        row[precision] = {
                            "status": "ok",
                            "loglik_delta_nats": round(abs(float(dec.token_logprobs(ids).mean()) - ref_lp), 5),
                            "greedy_common_prefix": same,
                            "size_ratio": round(
                                sum(p.stat().st_size for p in q.glob("model.*") if p.suffix != ".json")
                                / sum(p.stat().st_size for p in d.glob("model.*") if p.suffix != ".json"),
                                3,
                            ),
                        }
                    except Exception as err:  # noqa: BLE001
                        row[precision] = {"status": "failed", "why": str(err).splitlines()[0][:200]}
                rows.append(row)
                print(json.dumps(row))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    for r in rows:
        cells = []
        for p in ("fp32", "int8", "int4"):
            c = r.get(p, {"status": "-"})
            if c["status"] != "ok":
                cells.append(c["status"])
            elif p == "fp32":
                diff = max(c["prefill_max_abs_diff"], c["decode_max_abs_diff"])
                cells.append(f"ok ({diff:.1e}, greedy {'=' if c['greedy_identical'] else '≠'})")
            else:
                cells.append(f"ok (Δ {c['loglik_delta_nats']:.4f} nats, greedy {c['greedy_common_prefix']}/16)")
        print(f"| {r['family']} | {r['exporter']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
