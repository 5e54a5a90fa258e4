import pytest
from pydantic import ValidationError

from edgekit.errors import RecipeError
from edgekit.recipe.config import (
    BenchConfig,
    ExportConfig,
    QuantizeConfig,
    Recipe,
    builtin_recipe_names,
    describe_builtins,
    load_recipe,
    recipe_from_dict,
)


def test_builtins_load_and_describe_themselves():
    names = builtin_recipe_names()
    assert {"ptq-dynamic", "ptq-static"} <= set(names)
    for name, desc in describe_builtins():
        assert desc, name
        assert load_recipe(name).name == name


def test_unknown_key_fails_naming_the_key(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("version: 1\nname: x\nstages:\n  - kind: quantize\n    method: dynamic\n    per_chanel: true\n")
    with pytest.raises(RecipeError, match=r"stages\.0\.quantize\.per_chanel: unknown key"):
        load_recipe(f)


def test_wrong_type_fails_naming_the_key():
    with pytest.raises(RecipeError, match=r"stages\.0\.bench\.runs"):
        recipe_from_dict({"name": "x", "stages": [{"kind": "bench", "runs": "many"}]})


def test_unknown_stage_kind_and_top_level_key():
    with pytest.raises(RecipeError, match="stages.0"):
        recipe_from_dict({"name": "x", "stages": [{"kind": "distil"}]})
    with pytest.raises(RecipeError, match="colour: unknown key"):
        recipe_from_dict({"name": "x", "colour": 1, "stages": [{"kind": "export"}]})


def test_wrong_version_empty_stages_and_unknown_name(tmp_path):
    with pytest.raises(RecipeError, match="version"):
        recipe_from_dict({"version": 2, "name": "x", "stages": [{"kind": "export"}]})
    with pytest.raises(RecipeError, match="stages"):
        recipe_from_dict({"name": "x", "stages": []})
    with pytest.raises(RecipeError, match="unknown recipe 'nope'"):
        load_recipe("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_python_and_yaml_recipes_are_the_same_object(tmp_path):
    built = Recipe(
        name="mine",
        stages=[
            ExportConfig(kind="export"),
            QuantizeConfig(kind="quantize", method="dynamic"),
            BenchConfig(kind="bench", runs=7),
        ],
    )
    f = tmp_path / "mine.yaml"
    f.write_text(built.to_yaml())
    loaded = load_recipe(f)
    assert loaded == built
    assert loaded.digest() == built.digest()
    assert loaded.bench_config().runs == 7


def test_digest_changes_with_content():
    a = recipe_from_dict({"name": "x", "stages": [{"kind": "quantize", "method": "dynamic"}]})
    b = recipe_from_dict({"name": "x", "stages": [{"kind": "quantize", "method": "static"}]})
    assert a.digest() != b.digest()


def test_configs_are_frozen():
    cfg = QuantizeConfig(kind="quantize", method="dynamic")
    with pytest.raises(ValidationError, match="frozen"):
        cfg.method = "static"
