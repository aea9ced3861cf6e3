"""Checked edits of a TFLite flatbuffer, for the int8 recipes.

The converter decides precision per op *type*; MoViNet needs decisions per
*tensor* (which ranges, which convolutions keep float activations, which
ops the delegate can take). These edits work on the flatbuffer's object API
(``schema_py_generated``) and return new bytes; each one keeps the graph
valid for the interpreter (types, quantization parameters, op order).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Op:
    """One operator of the main subgraph, by position."""

    index: int
    name: str  # builtin type, e.g. CONV_2D
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    node: str  # the first output's tensor name: what the quantizer calls the node


class Graph:
    """The main subgraph of a TFLite model, editable, packed back with :meth:`pack`."""

    def __init__(self, tflite: bytes) -> None:
        self.model = schema.ModelT.InitFromPackedBuf(tflite, 0)
        self.sub = self.model.subgraphs[0]

    # ---- reading --------------------------------------------------------
    def op_type(self, op: Any) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        return _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")

    def ops(self) -> Iterator[Op]:
        for i, op in enumerate(self.sub.operators or []):
            outputs = tuple(int(t) for t in op.outputs)
            node = self.tensor_name(outputs[0]) if outputs else ""
            yield Op(i, self.op_type(op), tuple(int(t) for t in op.inputs), outputs, node)

    def tensor(self, index: int) -> Any:
        return self.sub.tensors[index]

    def tensor_name(self, index: int) -> str:
        name = self.sub.tensors[index].name
        return name.decode() if isinstance(name, bytes) else str(name)

    def consumers(self) -> dict[int, list[Op]]:
        out: dict[int, list[Op]] = {}
        for op in self.ops():
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op)
        return out

    def output_nodes(self) -> list[str]:
        """Nodes whose output is a model output (the logits and every state)."""
        outputs = {int(t) for t in self.sub.outputs}
        return [op.node for op in self.ops() if any(t in outputs for t in op.outputs)]

    def ranges(self) -> dict[int, tuple[float, float]]:
        """Calibrated (min, max) of every tensor that has them."""
        out = {}
        for i, t in enumerate(self.sub.tensors):
            q = t.quantization
            if q is not None and q.min is not None and len(q.min) == 1:
                out[i] = (float(q.min[0]), float(q.max[0]))
        return out

    def precision_by_op(self) -> dict[str, dict[str, int]]:
        """Per op type, how many compute in int8, in float with int8 weights, and in float.

        What the manifest records of the per-tensor decisions: an op is as precise
        as its first input (its activation) and, for convolutions, its weights.
        """
        out: dict[str, dict[str, int]] = {}
        for op in self.ops():
            if op.name in ("QUANTIZE", "DEQUANTIZE") or not op.inputs:
                continue
            x = self.sub.tensors[op.inputs[0]].type
            w = self.sub.tensors[op.inputs[1]].type if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
            if x == schema.TensorType.INT8:
                kind = "int8"
            elif x == schema.TensorType.FLOAT32:
                weighted = op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                kind = "int8 weights" if weighted and w == schema.TensorType.INT8 else "float"
            else:  # int32 frame counts and their arithmetic
                kind = _TYPE_NAMES.get(x, "other")
            counts = out.setdefault(op.name, {})
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(out.items()))

    def _signature_input(self, name: str) -> Any:
        for entry in self.model.signatureDefs[0].inputs if self.model.signatureDefs else []:
            key = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
            if key == name:
                return entry
        return None

    def input_index(self, name: str) -> int | None:
        """The tensor behind the signature input ``name``."""
        entry = self._signature_input(name)
        return None if entry is None else int(entry.tensorIndex)

    def set_input_index(self, name: str, index: int) -> None:
        self._signature_input(name).tensorIndex = index

    # ---- editing --------------------------------------------------------
    def set_range(self, index: int, low: float, high: float) -> None:
        q = self.sub.tensors[index].quantization
        q.min, q.max = [float(low)], [float(high)]

    def int8_weights(self, nodes: Iterable[str], min_elements: int = 1024) -> list[str]:
        """Give float CONV_2D / FULLY_CONNECTED ops int8 per-channel weights, keeping float activations.

        These are the converter's "dynamic range" ops: XNNPACK quantizes the
        input per call (qd8) and runs the product in int8, so the weights
        are 4x smaller and read 4x faster, while no calibrated range can
        clip. Returns the nodes changed.
        """
        wanted = set(nodes)
        changed = []
        for op in self.ops():
            if op.name not in ("CONV_2D", "FULLY_CONNECTED") or op.node not in wanted:
                continue
            x, w = self.sub.tensors[op.inputs[0]], self.sub.tensors[op.inputs[1]]
            if x.type != schema.TensorType.FLOAT32 or w.type != schema.TensorType.FLOAT32:
                continue
            weights = self._buffer(w, np.float32)
            if weights.size < min_elements:
                continue
            rows = weights.reshape(weights.shape[0], -1)
            scale = np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127.0
            quantized = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
            self._set_buffer(w, quantized.reshape(weights.shape))
            w.type = schema.TensorType.INT8
            q = schema.QuantizationParametersT()
            q.scale, q.zeroPoint, q.quantizedDimension = [float(s) for s in scale], [0] * len(scale), 0
            w.quantization = q
            changed.append(op.node)
        return changed

    def float_islands(self, op_type: str) -> list[str]:
        """Run every int8 ``op_type`` op in float between a DEQUANTIZE and a QUANTIZE.

        The quantizer treats pooling as scale-preserving and keeps it int8
        even when deny-listed, but XNNPACK runs AVERAGE_POOL_2D only in float:
        each int8 one falls back to a built-in kernel and splits the graph.
        Returns the nodes changed.
        """
        dequantize = self._opcode(schema.BuiltinOperator.DEQUANTIZE)
        quantize = self._opcode(schema.BuiltinOperator.QUANTIZE)
        new_ops: list[Any] = []
        changed = []
        for op in self.sub.operators:
            if self.op_type(op) != op_type or self.sub.tensors[op.inputs[0]].type != schema.TensorType.INT8:
                new_ops.append(op)
                continue
            float_in = self._float_twin(int(op.inputs[0]), "/float_input")
            float_out = self._float_twin(int(op.outputs[0]), "/float_output")
            new_ops.append(self._new_op(dequantize, [int(op.inputs[0])], [float_in]))
            int8_out = int(op.outputs[0])
            op.inputs = [float_in, *list(op.inputs)[1:]]
            op.outputs = [float_out]
            new_ops.append(op)
            new_ops.append(self._new_op(quantize, [float_out], [int8_out]))
            changed.append(self.tensor_name(int8_out))
        self.sub.operators = new_ops
        return changed

    def pack(self) -> bytes:
        import flatbuffers

        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    # ---- internals --------------------------------------------------------
    def _buffer(self, tensor: Any, dtype: type) -> np.ndarray:
        data = self.model.buffers[tensor.buffer].data
        return np.frombuffer(bytes(bytearray(data)), dtype).reshape([int(d) for d in tensor.shape])

    def _set_buffer(self, tensor: Any, values: np.ndarray) -> None:
        self.model.buffers[tensor.buffer].data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)

    def _opcode(self, builtin: int) -> int:
        for i, code in enumerate(self.model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def _float_twin(self, index: int, suffix: str) -> int:
        source = self.sub.tensors[index]
        twin = schema.TensorT()
        twin.shape = list(source.shape)
        twin.shapeSignature = None if source.shapeSignature is None else list(source.shapeSignature)
        twin.type = schema.TensorType.FLOAT32
        twin.name = (self.tensor_name(index) + suffix).encode()
        empty = schema.BufferT()
        self.model.buffers.append(empty)
        twin.buffer = len(self.model.buffers) - 1
        self.sub.tensors.append(twin)
        return len(self.sub.tensors) - 1

    @staticmethod
    def _new_op(opcode: int, inputs: list[int], outputs: list[int]) -> Any:
        op = schema.OperatorT()
        op.opcodeIndex = opcode
        op.inputs, op.outputs = inputs, outputs
        return op
