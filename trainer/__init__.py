"""Tunedeck's standalone trainer: config schema, data, one module per method, reporting, CLI.

Importing the package is light (no torch): the desktop imports trainer.config from it.
"""
