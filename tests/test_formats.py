"""The format registry: one declaration per format, asked by recipes, bundles, bench and the stages.

A format registered here, in the test, is recognised everywhere the core asks about formats,
with no core module changed: that is what adding an export format costs.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import edgekit.plugins as plugins
from edgekit import formats
from edgekit.errors import ExitCode, InputError, InternalError, ModelFileError, RecipeError
from edgekit.formats import Format
from edgekit.measure.model_info import detect_format, token_limits
from edgekit.recipe.config import ExportConfig, recipe_from_dict

FAKE = Format(
    "fake",
    (".fake", ".fk"),
    label="Fake",
    fixed_lengths=True,
    check=lambda path: None if path.read_bytes().startswith(b"FAKE") else "not a fake model (no FAKE header)",
    token_limits=lambda path: {"vocab": 7, "positions": 16},
)
# the same format as an entry point would name it
FAKE_ENTRY = FAKE


@pytest.fixture
def fake():
    formats.register(FAKE)
    try:
        yield FAKE
    finally:
        formats.unregister(FAKE.name)


@pytest.fixture
def entry_points_only(monkeypatch):
    """The installed entry points, replaced by the built-in table plus whatever a test adds."""
    extra: list[EntryPoint] = []

    def fake_entry_points(group: str):
        return [*plugins._builtin(group), *(ep for ep in extra if ep.group == group)]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    plugins._group.cache_clear()
    yield extra
    plugins._group.cache_clear()


def _recipe(fmt: object, **export):
    return recipe_from_dict({"version": 1, "name": "r", "stages": [{"kind": "export", "format": fmt, **export}]})


# --- the built-in formats --------------------------------------------------------------


def test_builtin_formats():
    assert formats.names() == ("executorch", "onnx", "openvino", "tflite")
    assert formats.names(bundled=True) == ("executorch", "onnx", "openvino", "tflite")
    onnx, tflite = formats.get("onnx"), formats.get("tflite")
    assert (onnx.label, onnx.suffixes, onnx.model_file, onnx.fixed_lengths) == ("ONNX", (".onnx",), "model.onnx", False)
    assert (tflite.label, tflite.model_file, tflite.fixed_lengths) == ("TFLite", "model.tflite", True)
    assert formats.by_suffix("out/a/MODEL.TFLITE") is tflite
    assert formats.by_suffix(Path("m.onnx")) is onnx
    assert formats.by_suffix("m.pt") is None and formats.find("pt") is None and formats.find(3) is None
    assert formats.describe({"tflite", "onnx"}) == "ONNX or TFLite"
    assert formats.label("hf-checkpoint") == "hf-checkpoint"


def test_unknown_format_names_the_known_ones():
    with pytest.raises(
        InputError, match=r"unknown model format 'coreml'; known: executorch, onnx, openvino, tflite"
    ) as err:
        formats.get("coreml")
    assert err.value.exit_code == ExitCode.INPUT


def test_builtin_formats_own_their_quantize_backend_and_search_space():
    from edgekit.stages.quantize import backend, methods, quantizable
    from edgekit.stages.search_space import searchable, sensitivity_ranker, space

    assert quantizable() == searchable() == {"executorch", "onnx", "openvino", "tflite"}
    assert backend("onnx").MODEL_FILE == formats.get("onnx").model_file
    assert backend("tflite").MODEL_FILE == formats.get("tflite").model_file
    assert "weight_only" in methods("tflite") and "weight_only" not in methods("onnx")
    assert [c.name for c in space("tflite")][:2] == ["dynamic", "weight-only"]
    assert len(space("onnx")) == 10
    assert sensitivity_ranker("onnx") is not None and sensitivity_ranker("tflite") is None


def test_builtin_formats_without_installed_entry_points(monkeypatch):
    """The remote runner is a zipapp with no package metadata: formats come from the built-in table."""
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins._group.cache_clear()
    try:
        assert formats.names() == ("executorch", "onnx", "openvino", "tflite")
    finally:
        plugins._group.cache_clear()


def test_the_runner_fallback_matches_the_entry_points():
    """plugins.BUILTIN (the remote runner has no package metadata) declares what pyproject.toml does."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"][formats.GROUP] == plugins.BUILTIN[formats.GROUP]


# --- recipes ---------------------------------------------------------------------------


def test_recipe_format_errors_are_unchanged():
    """The message a Literal["onnx", "tflite"] gave, for every kind of bad value; exit code 2."""
    for bad in ("tfl", 3, ["onnx"], None):
        with pytest.raises(RecipeError) as err:
            _recipe(bad)
        assert (
            str(err.value)
            == "recipe <dict>: stages.0.export.format: Input should be 'executorch', 'onnx', 'openvino' or 'tflite'"
        )
        assert err.value.exit_code == ExitCode.INPUT
    assert _recipe("tflite").stages[0].format == "tflite"
    assert ExportConfig(kind="export").format == "onnx"


def test_recipe_schema_lists_the_known_formats():
    prop = ExportConfig.model_json_schema()["properties"]["format"]
    assert (
        prop["enum"] == ["executorch", "onnx", "openvino", "tflite"]
        and prop["type"] == "string"
        and prop["default"] == "onnx"
    )


def test_fixed_length_formats_check_export_seq_lens():
    with pytest.raises(RecipeError, match=r"stages.0.export.seq_lens is 256, but m takes at most 128 tokens"):
        _recipe("tflite", seq_lens=[64, 256]).check_lengths(128, "m")
    _recipe("onnx", seq_lens=[64, 256]).check_lengths(128, "m")  # ONNX has dynamic axes: seq_lens is not used


# --- a format registered in the test -----------------------------------------------------


def test_a_registered_format_is_known_everywhere(fake, tmp_path):
    from edgekit.stages import describe_formats

    assert formats.names() == ("executorch", "fake", "onnx", "openvino", "tflite")
    assert formats.names(bundled=True) == ("executorch", "fake", "onnx", "openvino", "tflite")
    assert formats.get("fake") is FAKE and formats.by_suffix("x/model.FK") is FAKE
    assert FAKE.model_file == "model.fake"
    assert describe_formats({"fake", "onnx", "hf-checkpoint"}) == "Fake, a checkpoint or ONNX"
    # recipes
    assert _recipe("fake").stages[0].format == "fake"
    with pytest.raises(RecipeError, match=r"Input should be 'executorch', 'fake', 'onnx', 'openvino' or 'tflite'$"):
        _recipe("tfl")
    assert ExportConfig.model_json_schema()["properties"]["format"]["enum"] == [
        "executorch",
        "fake",
        "onnx",
        "openvino",
        "tflite",
    ]
    with pytest.raises(RecipeError, match="seq_lens is 256"):
        _recipe("fake", seq_lens=[256]).check_lengths(128, "m")
    # model files (edgekit bench)
    good, bad = tmp_path / "m.fake", tmp_path / "n.fk"
    good.write_bytes(b"FAKE model")
    bad.write_bytes(b"something else")
    assert detect_format(good) == "fake"
    assert token_limits(good, "fake") == {"vocab": 7, "positions": 16}
    with pytest.raises(ModelFileError, match=r"n.fk: not a fake model \(no FAKE header\)"):
        detect_format(bad)
    other = tmp_path / "m.xyz"
    other.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"expected \.pte, \.fake, \.fk, \.onnx, \.xml or \.tflite\)"):
        detect_format(other)


def test_a_bundle_may_carry_a_registered_format(tiny_bundle, tmp_path):
    """A bundle variant's format is checked against the registry: unknown until registered."""
    import json
    import shutil

    from edgekit.device.bundle import BUNDLE_FILE, open_bundle, seal
    from edgekit.errors import ArtifactError

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    meta = json.loads((b / BUNDLE_FILE).read_text())
    meta["variants"][0]["format"] = "fake"
    (b / BUNDLE_FILE).write_text(json.dumps(seal(meta)))
    with pytest.raises(ArtifactError, match=r"variants\[0\]"):
        open_bundle(b)
    formats.register(FAKE)
    try:
        assert open_bundle(b).variants[0].format == "fake"
    finally:
        formats.unregister("fake")


def test_unregistered_format_is_gone(fake):
    formats.unregister("fake")
    assert formats.names() == ("executorch", "onnx", "openvino", "tflite") and formats.by_suffix("m.fake") is None
    formats.register(FAKE)  # the fixture unregisters it again


def test_a_format_bundles_may_not_carry(tmp_path):
    build_only = formats.register(Format("graph-ir", (".gir",), bundle=False))
    try:
        assert "graph-ir" in formats.names() and "graph-ir" not in formats.names(bundled=True)
        (tmp_path / "m.gir").write_bytes(b"")
        assert detect_format(tmp_path / "m.gir") == "graph-ir"  # no check declared: the suffix decides
        assert token_limits(tmp_path / "m.gir", "graph-ir") == {}
        assert build_only.quantize_backend() is None
    finally:
        formats.unregister("graph-ir")


def test_a_format_declared_by_an_entry_point(entry_points_only):
    entry_points_only.append(EntryPoint("fake", "tests.test_formats:FAKE_ENTRY", formats.GROUP))
    assert formats.names() == ("executorch", "fake", "onnx", "openvino", "tflite")
    assert formats.get("fake") is FAKE
    assert "fake" in plugins.declared_formats()


def test_a_lazily_named_check_is_imported_on_use(tmp_path):
    lazy = Format("lazy", (".lazy",), check="tests.test_formats:_lazy_check")
    (tmp_path / "m.lazy").write_bytes(b"")
    assert lazy.problem(tmp_path / "m.lazy") == "checked lazily"
    broken = Format("broken", (".brk",), check="tests.no_such_module:check")
    with pytest.raises(InternalError, match="format 'broken' check 'tests.no_such_module:check' cannot be imported"):
        broken.problem(tmp_path / "m.lazy")


def _lazy_check(path: Path) -> str | None:
    return "checked lazily"


# --- declarations the registry refuses -------------------------------------------------


def test_a_suffix_two_formats_claim_is_refused():
    with pytest.raises(InternalError, match=r"formats 'onnx' and 'other' both claim the suffix '\.onnx'"):
        formats.register(Format("other", (".onnx",)))
    assert formats.find("other") is None  # not left half-registered


def test_a_name_registered_twice_differently_is_refused(fake):
    formats.register(FAKE)  # the same declaration again: harmless
    with pytest.raises(InternalError, match="format 'fake' is registered twice, differently"):
        formats.register(Format("fake", (".fake2",)))
    with pytest.raises(InternalError, match="format 'onnx' is registered twice, differently"):
        formats.register(Format("onnx", (".onnx2",)))


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"name": "Bad Name", "suffixes": (".b",)}, "is not a plain lower-case name"),
        ({"name": "b", "suffixes": ()}, "suffixes must be lower-case"),
        ({"name": "b", "suffixes": ("b",)}, "suffixes must be lower-case"),
        ({"name": "b", "suffixes": (".B",)}, "suffixes must be lower-case"),
    ],
)
def test_malformed_declarations_are_refused(kwargs, says):
    with pytest.raises(InternalError, match=says):
        Format(**kwargs)


def test_entry_points_that_are_not_formats_are_refused(entry_points_only):
    entry_points_only.append(EntryPoint("fake", "tests.test_formats:_lazy_check", formats.GROUP))
    with pytest.raises(InternalError, match="entry point 'fake' is a function, not an edgekit Format"):
        formats.names()
    entry_points_only[:] = [EntryPoint("fk", "tests.test_formats:FAKE_ENTRY", formats.GROUP)]
    plugins._group.cache_clear()
    with pytest.raises(InternalError, match="entry point 'fk' declares the format 'fake'; the names must match"):
        formats.names()


def test_a_model_size_counts_the_files_its_format_keeps_beside_it(tmp_path):
    """An OpenVINO IR's weights are in model.bin beside model.xml: the size a report and a search budget see
    is both; an ONNX file is itself."""
    xml, binary, onnx_file = tmp_path / "model.xml", tmp_path / "model.bin", tmp_path / "m.onnx"
    xml.write_bytes(b"x" * 100)
    binary.write_bytes(b"w" * 5000)
    onnx_file.write_bytes(b"o" * 300)
    (tmp_path / "m.bin").write_bytes(b"z" * 7)  # a .bin beside a format without companions does not count
    assert formats.get("openvino").companions == (".bin",)
    assert formats.model_size(xml) == 5100 and formats.model_size(onnx_file) == 300
    binary.unlink()
    assert formats.model_size(xml) == 100
