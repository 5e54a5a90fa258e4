"""Contracts every plugin of a kind meets: a plugin's test module subclasses the template."""
