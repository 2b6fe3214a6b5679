"""Modelship's fine-tuning trainer: the command a fine-tuning Job runs.

``main`` is the CLI, ``pipeline.run`` the steps, ``pretrain`` a helper that
makes a base model for demos and tests through the same code.
"""
