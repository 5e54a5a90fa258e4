"""Recipes: versioned lists of typed stage configs, strictly validated, and the built-in ones.

The public names are re-exported here: ``edgekit.recipe.Recipe``, ``load_recipe``, ``recipe_from_dict``.
"""

from edgekit.recipe.config import Recipe, load_recipe, recipe_from_dict

__all__ = ["Recipe", "load_recipe", "recipe_from_dict"]
