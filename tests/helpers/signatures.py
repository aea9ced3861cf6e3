"""Our exported models with their signature edited, as other exporters would write them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def edit_signature(source: Path, target: Path, edit: Callable[[Any], None]) -> None:
    """Write ``source`` to ``target`` after ``edit(signature_def)`` (the model's one SignatureDefT)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    assert len(model.signatureDefs) == 1
    edit(model.signatureDefs[0])
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))
