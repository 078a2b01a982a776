"""Adapters between Tandem and agent frameworks.

Each module imports its framework itself, so ``tandem`` never needs one:
``tandem.integrations.autogen`` needs ``pip install 'tandem-router[autogen]'``.
"""
