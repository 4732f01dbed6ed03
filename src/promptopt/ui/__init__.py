"""The web UI (`promptopt ui`, the `ui` extra): a Streamlit page over promptopt.api."""

from __future__ import annotations

from pathlib import Path

APP = Path(__file__).with_name("app.py")
