"""Small helpers shared by the tests."""

from __future__ import annotations

from edgekit.recipe.config import Recipe, load_recipe, recipe_from_dict

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
