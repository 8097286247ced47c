"""The Gradio chat app over the abstracts: create_app() builds it, launch() serves it.

Gradio is imported only when the app itself is asked for, so ``ui.render`` and
``ui.handlers`` stay light to import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "launch", "run_serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ui import app

        return getattr(app, name)
    raise AttributeError(f"module 'ui' has no attribute {name!r}")
