"""Which model a command runs: the one named, else ``$MOVINET_EDGE_MODEL``, else the exporter's default folders.

Every entry point (live, classify, serve, bench) resolves the model the same
way and gives the same hint when there is none, so this is its one home.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import EdgeError
from .manifest import MODEL_NAME

# The exporter's default outputs, int8 first (the fast one on a Pi).
DEFAULT_MODEL_DIRS = (Path("models/a0_stream_int8"), Path("models/a0_stream_float32"))
MODEL_ENV = "MOVINET_EDGE_MODEL"
#: The one hint after "no model": the same words wherever a model is missing.
MAKE_MODEL_HINT = "make one with: movinet-export --model a0 --quantize   (or pass --model DIR)"
NO_MODEL = f"no model found; {MAKE_MODEL_HINT}"


def resolve_model(model: Path | None) -> Path:
    """``model``, else $MOVINET_EDGE_MODEL, else the exporter's default output folders under CWD."""
    if model is not None:
        if not Path(model).exists():
            raise EdgeError(f"model {model} does not exist; {MAKE_MODEL_HINT}")
        return Path(model)
    env = os.environ.get(MODEL_ENV)
    if env:
        if not Path(env).exists():
            raise EdgeError(f"model {env} does not exist (it is ${MODEL_ENV}); {MAKE_MODEL_HINT}")
        return Path(env)
    for folder in DEFAULT_MODEL_DIRS:
        if (folder / MODEL_NAME).is_file():
            return folder
    raise EdgeError(NO_MODEL)
