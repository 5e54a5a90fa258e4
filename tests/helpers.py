"""Small helpers shared by the tests."""

from __future__ import annotations

from collections import Counter

from edgekit.recipe.config import Recipe, load_recipe, recipe_from_dict


def onnx_ops(path) -> Counter:
    """How many nodes of each op type the ONNX model at ``path`` has (its top-level graph)."""
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


FAST_BENCH = {"kind": "bench", "runs": 5, "warmup": 1, "fidelity_samples": 24, "threads": 1, "seq_len": 32}


def fast_recipe(name: str, **bench) -> Recipe:
    """A built-in recipe with its bench stage made cheap."""
    data = load_recipe(name).model_dump(mode="json", exclude_none=True)
    data["stages"] = [s for s in data["stages"] if s["kind"] != "bench"] + [{**FAST_BENCH, **bench}]
    if "quantize" in [s["kind"] for s in data["stages"]]:
        for s in data["stages"]:
            if s["kind"] == "quantize":
                s.setdefault("calibration", {})
                s["calibration"].update({"samples": 32, "seq_len": 32})
    return recipe_from_dict(data, name)
