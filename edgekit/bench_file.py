"""``edgekit bench FILE``: benchmark any model file, made by edgekit or not."""

from __future__ import annotations

from pathlib import Path

from edgekit.calibration import load_text_data
from edgekit.environment import environment
from edgekit.errors import EdgekitError, ModelFileError
from edgekit.inspect_model import detect_format
from edgekit.measure import BenchSettings, Target, measure
from edgekit.plugins import runtime_for_format
from edgekit.report import build_report


def _tokenizer(path: Path):
    from edgekit.checkpoint import offline

    offline()
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001
        raise ModelFileError(f"{path}: cannot load a tokenizer ({str(err).splitlines()[0]})") from None


def bench_file(model: Path, *, runtime: str | None, settings: BenchSettings, tokenizer: Path | None = None,
               texts_file: Path | None = None, progress: bool = True) -> dict:
    model = Path(model)
    fmt = detect_format(model)
    adapter = runtime_for_format(fmt, runtime)

    def load():
        try:
            return adapter.load(model, threads=settings.threads)
        except EdgekitError:
            raise
        except Exception as err:  # noqa: BLE001 - the runtime's own message, on one line
            raise ModelFileError(f"{model}: {adapter.name} cannot load it ({str(err).splitlines()[0][:300]})") from None

    tok = _tokenizer(tokenizer) if tokenizer else None
    texts = load_text_data(evaluation=texts_file).heldout if tok is not None else []
    target = Target(name=model.stem, format=fmt, precision="unknown", runtime=adapter.name, path=str(model),
                    size_bytes=model.stat().st_size, load=load)
    rows = measure([target], settings, tokenizer=tok, texts=texts, progress=progress)
    return build_report(
        model={"name": model.name, "path": str(model), "task": None},
        recipe=None, environment=environment(settings.threads), results=rows,
        settings={**settings.__dict__, "inputs": "tokenized text" if tok else "synthesized from input specs"},
        kind="bench",
    )
