"""Our exported models with their signature edited, as other exporters would write them.

The TFLite flatbuffer schema comes with the device runtime (ai-edge-litert ships
``schema_py_generated``), so these edits need no TensorFlow and run in the base
install; TensorFlow's copy of the schema is the fallback for a runtime without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def edit_signature(source: Path, target: Path, edit: Callable[[Any], None]) -> None:
    """Write ``source`` to ``target`` after ``edit(signature_def)`` (the model's one SignatureDefT)."""
    import flatbuffers

    model = _schema().ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    assert len(model.signatureDefs) == 1
    edit(model.signatureDefs[0])
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))
