"""The streaming classifier: one TFLite MoViNet, its states, one frame per step.

Works from our ``manifest.json`` when it is there, and from the TFLite
signature alone when it is not, so MoViNet stream models exported by other
tools (TF Hub's, the official export tool's) run too.

Why it is written the way it is:
- States are carried by tensor index with one copy each (output buffer ->
  input buffer) and no per-call dicts: with 44 tensors per call the Python
  side otherwise costs more than an int8 invoke.
- A state whose output and input quantization differ is requantized on the
  way back; int8 states start at their zero point (the real value 0), not at
  the integer 0.
- Pooling states are running sums; ``rescale_history`` lets a long-stream
  policy shrink them without changing the current average (see windowing.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgeError
from .manifest import (
    LABELS_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    Manifest,
    Quantization,
    load_manifest,
    read_labels,
    state_kind,
)
from .preprocess import InputEncoder, ResizePolicy, resize_square
from .runtime import Runtime, find_runtime, make_interpreter, release_model_pages

SIGNATURE_KEYS = ("serving_default", "call")

# Official stream models when a model comes without a manifest.
FPS_BY_RESOLUTION = {172: 5.0, 224: 5.0, 256: 12.0, 290: 8.0, 320: 12.0}


def _quantization(detail: dict[str, Any]) -> Quantization | None:
    params = detail.get("quantization_parameters") or {}
    scales, zero_points = params.get("scales"), params.get("zero_points")
    if scales is None or len(scales) == 0:
        scale, zp = detail.get("quantization", (0.0, 0))
        return Quantization(float(scale), int(zp)) if scale else None
    if len(scales) > 1:
        raise EdgeError(f"tensor {detail.get('name')} is quantized per channel; per-tensor quantization expected")
    return Quantization(float(scales[0]), int(zero_points[0]))


@dataclass
class StateSlot:
    """One carried state: where it goes in, where it comes out, how to convert."""

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype
    input_index: int
    output_index: int
    input_quantization: Quantization | None
    output_quantization: Quantization | None
    initial: np.ndarray  # the value that means "no history" (zero point for int8)
    input_view: Callable[[], np.ndarray]
    output_view: Callable[[], np.ndarray]
    output_dtype: np.dtype | None = None  # None: the input's

    needs_requantization: bool = field(init=False)

    def __post_init__(self) -> None:
        # Decided once: carry() runs 43 times a step, where a per-call check cost
        # about as much as the copy (measured 1.1 ms a step for A0 on x86).
        iq, oq = self.input_quantization, self.output_quantization
        same_dtype = self.output_dtype is None or np.dtype(self.output_dtype) == np.dtype(self.dtype)
        same_quantization = (iq is None and oq is None) or (
            iq is not None
            and oq is not None
            and abs(iq.scale - oq.scale) <= 1e-6 * abs(oq.scale)
            and iq.zero_point == oq.zero_point
        )
        # Anything else (int8 in and out at other scales, or an int8 output that feeds a
        # float input, as other tools' models may have) goes through the real values.
        self.needs_requantization = not (same_dtype and same_quantization)

    def carry(self) -> None:
        """Copy this step's output state into next step's input, requantizing if needed."""
        if not self.needs_requantization:
            np.copyto(self.input_view(), self.output_view())
            return
        real = dequantize(self.output_view(), self.output_quantization)
        if self.input_quantization is None:
            np.copyto(self.input_view(), real, casting="unsafe")
        else:
            requantize_into(real, self.input_quantization, self.input_view())


def requantize_into(real: np.ndarray, q: Quantization, out: np.ndarray) -> None:
    """Quantize real values into ``out``'s integer dtype, rounding and saturating."""
    info = np.iinfo(out.dtype)
    values = np.rint(real / np.float32(q.scale)) + q.zero_point
    np.copyto(out, np.clip(values, info.min, info.max), casting="unsafe")


def dequantize(values: np.ndarray, q: Quantization | None) -> np.ndarray:
    if q is None or values.dtype.kind == "f":
        return values.astype(np.float32, copy=False)
    return (values.astype(np.float32) - q.zero_point) * np.float32(q.scale)


class StreamingClassifier:
    """A MoViNet stream model that classifies one frame per :meth:`step`."""

    def __init__(
        self,
        model_path: Path,
        *,
        manifest: Manifest | None = None,
        labels: list[str] | None = None,
        num_threads: int | None = None,
        resize_policy: ResizePolicy = ResizePolicy.CROP,
        runtime: Runtime | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.manifest = manifest
        self.runtime = runtime or find_runtime()
        self.num_threads = num_threads
        self.resize_policy = ResizePolicy(resize_policy)
        self.interpreter = make_interpreter(self.model_path, num_threads, self.runtime)
        self.signature_key = self._pick_signature()
        self._bind_tensors()
        self.labels = self._check_labels(labels)
        self.steps = 0
        self.reset()

    # ---- construction -------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        labels: str | Path | list[str] | None = None,
        num_threads: int | None = None,
        resize_policy: ResizePolicy | str | None = None,
        runtime: str | None = None,
    ) -> StreamingClassifier:
        """Open a model directory (model.tflite + manifest.json + labels.txt) or a .tflite file."""
        path = Path(path)
        if path.is_dir():
            model_path, folder = path / MODEL_NAME, path
            if not model_path.is_file():
                raise EdgeError(f"{path} has no {MODEL_NAME}; export one with movinet-export or pass the .tflite file")
        elif path.exists():
            model_path, folder = path, path.parent
        else:
            raise EdgeError(f"model {path} does not exist; export one with: movinet-export --model a0")
        manifest = load_manifest(folder / MANIFEST_NAME) if (folder / MANIFEST_NAME).is_file() else None
        if isinstance(labels, (str, Path)):
            label_list: list[str] | None = read_labels(Path(labels))
        elif labels is not None:
            label_list = list(labels)
        else:
            labels_file = folder / (manifest.labels_file if manifest else LABELS_NAME)
            label_list = read_labels(labels_file) if labels_file.is_file() else None
        return cls(
            model_path,
            manifest=manifest,
            labels=label_list,
            num_threads=num_threads,
            # The policy the model was trained and exported with, unless the caller overrides it.
            resize_policy=ResizePolicy(resize_policy or (manifest.resize_policy if manifest else "crop")),
            runtime=find_runtime(runtime) if runtime else None,
        )

    def _pick_signature(self) -> str:
        signatures = self.interpreter.get_signature_list()
        if self.manifest and self.manifest.signature_key in signatures:
            return self.manifest.signature_key
        for key in SIGNATURE_KEYS:
            if key in signatures:
                return key
        if len(signatures) == 1:
            return next(iter(signatures))
        raise EdgeError(
            f"{self.model_path} is not a streaming MoViNet: no signature named {' or '.join(SIGNATURE_KEYS)} "
            f"(found: {', '.join(signatures) or 'none'})"
        )

    def _bind_tensors(self) -> None:
        # allocate first: a live signature runner holds a reference that makes
        # the interpreter refuse allocate_tensors()/invoke() later.
        self.interpreter.allocate_tensors()
        release_model_pages(self.model_path)  # XNNPACK has packed its copy of the weights by now
        runner = self.interpreter.get_signature_runner(self.signature_key)
        subgraph = getattr(runner, "_subgraph_index", 0)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        del runner
        if subgraph != 0:
            raise EdgeError(f"signature {self.signature_key} is not in the main subgraph; re-export the model")
        self.input_details, self.output_details = inputs, outputs
        if "image" not in inputs:
            raise EdgeError(f"{self.model_path} is not a streaming MoViNet: it has no 'image' input")
        logits_name = "logits" if "logits" in outputs else None
        state_names = sorted(set(inputs) - {"image"})
        if not state_names:
            raise EdgeError(
                f"{self.model_path} is not a streaming MoViNet: it has no state inputs "
                "(a base, non-streaming model cannot run frame by frame)"
            )
        missing = [n for n in state_names if n not in outputs]
        if missing:
            raise EdgeError(f"{self.model_path} is not a streaming MoViNet: state {missing[0]} is not an output")
        if logits_name is None:
            rest = sorted(set(outputs) - set(state_names))
            if len(rest) != 1:
                raise EdgeError(f"{self.model_path} is not a streaming MoViNet: no 'logits' output")
            logits_name = rest[0]

        tensor = self.interpreter.tensor
        image = inputs["image"]
        shape = tuple(int(x) for x in image["shape"])
        if len(shape) != 5 or shape[0] != 1 or shape[1] != 1 or shape[2] != shape[3] or shape[4] != 3:
            raise EdgeError(f"{self.model_path}: image input has shape {shape}; expected [1, 1, N, N, 3]")
        self.resolution = shape[2]
        self.image_dtype = np.dtype(image["dtype"])
        self.image_quantization = _quantization(image) if self.image_dtype.kind in "iu" else None
        self._image_view = tensor(image["index"])
        self._encoder = InputEncoder(self.image_dtype, self.image_quantization)

        logits = outputs[logits_name]
        self.num_classes = int(np.prod(logits["shape"]))
        self._logits_view = tensor(logits["index"])
        self._logits_quantization = _quantization(logits) if np.dtype(logits["dtype"]).kind in "iu" else None

        self.states: list[StateSlot] = []
        for name in state_names:
            din, dout = inputs[name], outputs[name]
            dtype = np.dtype(din["dtype"])
            out_dtype = np.dtype(dout["dtype"])
            iq = _quantization(din) if dtype.kind in "iu" and dtype != np.int32 else None
            oq = _quantization(dout) if out_dtype.kind in "iu" and out_dtype != np.int32 else None
            initial = np.zeros(tuple(int(x) for x in din["shape"]), dtype)
            if iq is not None:
                initial.fill(iq.zero_point)
            self.states.append(
                StateSlot(
                    name=name,
                    kind=state_kind(name),
                    shape=initial.shape,
                    dtype=dtype,
                    input_index=din["index"],
                    output_index=dout["index"],
                    input_quantization=iq,
                    output_quantization=oq,
                    initial=initial,
                    input_view=tensor(din["index"]),
                    output_view=tensor(dout["index"]),
                    output_dtype=out_dtype,
                )
            )
        self._pools = self._pool_pairs()

    def _pool_pairs(self) -> list[tuple[StateSlot, StateSlot]]:
        by_name = {s.name: s for s in self.states}
        pairs = []
        for s in self.states:
            if s.kind == "pool_buffer":
                count = by_name.get(s.name[: -len("pool_buffer")] + "pool_frame_count")
                if count is not None:
                    pairs.append((s, count))
        return pairs

    def _check_labels(self, labels: list[str] | None) -> list[str]:
        if labels is None:
            return [f"class_{i}" for i in range(self.num_classes)]
        if len(labels) != self.num_classes:
            raise EdgeError(
                f"labels have {len(labels)} entries but the model has {self.num_classes} classes; "
                "pass the labels file the model was exported with"
            )
        return labels

    # ---- properties ----------------------------------------------------
    @property
    def fps(self) -> float:
        if self.manifest:
            return self.manifest.fps
        return FPS_BY_RESOLUTION.get(self.resolution, 5.0)

    @property
    def model_id(self) -> str:
        return self.manifest.model_id if self.manifest else "unknown"

    @property
    def has_pool_states(self) -> bool:
        """Whether the pooling sums and their frame counts are known by name (``*_pool_buffer`` with
        ``*_pool_frame_count``), as :meth:`rescale_history` needs; a model from a tool that names
        its states otherwise runs the same, but its history can only be bounded by resets."""
        return bool(self._pools)

    @property
    def history_frames(self) -> int:
        """How many frames the pooling states have accumulated (0 after reset)."""
        if not self._pools:
            return self.steps
        return int(self._pools[0][1].input_view().reshape(-1)[0])

    # ---- stepping -------------------------------------------------------
    def reset(self) -> None:
        """Forget all history: every state back to its 'nothing seen' value."""
        for s in self.states:
            np.copyto(s.input_view(), s.initial)
        self.steps = 0

    def prepare(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB uint8 frame -> square uint8 at the model resolution."""
        return resize_square(frame_rgb, self.resolution, self.resize_policy)

    def step_logits(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Feed one RGB frame; returns float32 logits. States advance."""
        return self.step_square(self.prepare(frame_rgb))

    def step_square(self, square: np.ndarray) -> np.ndarray:
        """Feed one frame already at the model resolution (see :meth:`prepare`); float32 logits."""
        self._encoder.encode_into(square, self._image_view())
        try:
            self.interpreter.invoke()
        except RuntimeError as exc:  # an op this runtime lacks, e.g. int8 DIV on tflite-runtime 2.14
            raise EdgeError(
                f"{self.runtime.name} {self.runtime.version} cannot run {self.model_path}: "
                f"{' '.join(str(exc).split())[:300]}; try another runtime or a float/selective int8 export"
            ) from None
        logits = dequantize(self._logits_view().reshape(-1), self._logits_quantization).copy()
        for s in self.states:
            s.carry()
        self.steps += 1
        return logits

    def step(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Feed one RGB frame; returns softmax probabilities (float32)."""
        return softmax(self.step_logits(frame_rgb))

    # ---- state access for long-stream policies ---------------------------
    def snapshot(self) -> list[np.ndarray]:
        """A copy of every input state (the history so far)."""
        return [s.input_view().copy() for s in self.states]

    def restore(self, snapshot: list[np.ndarray]) -> None:
        for s, value in zip(self.states, snapshot, strict=True):
            np.copyto(s.input_view(), value)

    def rescale_history(self, keep_frames: int) -> None:
        """Shrink every pooling sum to ``keep_frames`` frames' worth, keeping its mean.

        The pool output is sum / count; scaling the sum by keep/count and
        setting count = keep leaves the current average unchanged (no jump,
        no blind spot) while giving new frames more weight from now on.
        """
        for buf, count in self._pools:
            counts = count.input_view()
            n = int(counts.reshape(-1)[0])
            if n <= keep_frames:
                continue
            factor = np.float32(keep_frames / n)
            view = buf.input_view()
            if buf.input_quantization is None:
                view *= factor
            else:
                real = dequantize(view, buf.input_quantization) * factor
                requantize_into(real, buf.input_quantization, view)
            counts.fill(keep_frames)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z, dtype=np.float32)
    return e / e.sum()
