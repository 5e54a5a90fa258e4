"""`edgekit recipes`: list the built-in recipes."""

from __future__ import annotations

import click

from edgekit.cli.common import output_options


@click.command()
@output_options(json_help="Print one JSON document: every recipe's name, description and stages.")
def recipes(console):
    """List the built-in recipes with a one-line description."""
    from edgekit.recipe.config import builtin_recipe_names, load_recipe

    loaded = [(name, load_recipe(name)) for name in builtin_recipe_names()]
    if console.json:
        console.emit_json(
            {
                "recipes": [
                    {
                        "name": name,
                        "description": r.description,
                        "stages": [s.kind for s in r.stages],
                        "gates": r.gates.model_dump() if r.gates else None,
                    }
                    for name, r in loaded
                ]
            }
        )
        return
    width = max(len(name) for name, _ in loaded)
    for name, r in loaded:
        console.result(f"{name.ljust(width)}  {r.description}")
