"""The build side's runner: plan a recipe, run its stages into artifacts, measure, report, bundle."""
