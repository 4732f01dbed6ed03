"""Test helpers for promptopt: a local OpenAI-compatible stub server."""
