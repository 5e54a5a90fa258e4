from edgekit import errors


def test_exit_codes_are_distinct_and_stable():
    assert errors.InputError("x").exit_code == 2
    assert errors.GateFailed("x").exit_code == 3
    assert errors.InternalError("x").exit_code == 1
    assert errors.ParityError("x").exit_code == errors.ExitCode.GATE


def test_every_input_error_maps_to_2():
    for cls in (
        errors.CheckpointError,
        errors.RecipeError,
        errors.CalibrationError,
        errors.ModelFileError,
        errors.OutputError,
        errors.RuntimeUnavailableError,
        errors.ArtifactError,
    ):
        assert issubclass(cls, errors.InputError)
        assert cls("m").exit_code == 2
        assert str(cls("one line")) == "one line"
