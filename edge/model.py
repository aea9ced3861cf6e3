"""The streaming classifier: one TFLite MoViNet, its states, one frame per step.

Works from our ``manifest.json`` when it is there, and from the TFLite
signature alone when it is not, so MoViNet stream models exported by other
tools (TF Hub's, the official export tool's) run too.

Why it is written the way it is:
- The interpreter, its bound tensors and its packed weights live in an
  :class:`~movinet_edge.engine.Engine`; a classifier is a stream's view of one:
  its own state set, step count and history. :meth:`StreamingClassifier.fork`
  makes another view of the same engine(s), so N cameras cost one model in
  memory plus N state sets (tens of kB each), and no stream ever sees another's
  states (see engine.py for how they take turns).
- States are carried by tensor index with one copy each (output buffer ->
  input buffer) and no per-call dicts (states.py): with 44 tensors per call
  the Python side otherwise costs more than an int8 invoke.
- Pooling states are running sums; ``rescale_history`` lets a long-stream
  policy shrink them without changing the current average (see windowing.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from .engine import SIGNATURE_KEYS, Engine, StateSet
from .errors import EdgeError
from .model_path import MAKE_MODEL_HINT
from .manifest import (
    LABELS_NAME,
    MANIFEST_NAME,
    MODEL_NAME,
    Manifest,
    load_manifest,
    read_labels,
)
from .preprocess import ResizePolicy, resize_square
from .runtime import Runtime, find_runtime
from .states import StateSlot, dequantize, requantize_into

__all__ = ["SIGNATURE_KEYS", "FPS_BY_RESOLUTION", "StateSlot", "StreamingClassifier", "dequantize",
           "requantize_into", "softmax"]  # fmt: skip

# Official stream models when a model comes without a manifest.
FPS_BY_RESOLUTION = {172: 5.0, 224: 5.0, 256: 12.0, 290: 8.0, 320: 12.0}


class StreamingClassifier:
    """A MoViNet stream model that classifies one frame per :meth:`step`.

    ``pool``: how many interpreters to load (each with its own packed weights);
    forks are spread over them, so with ``pool=2`` two streams can invoke at
    the same time on two cores. One stream alone needs only one.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        manifest: Manifest | None = None,
        labels: list[str] | None = None,
        num_threads: int | None = None,
        resize_policy: ResizePolicy = ResizePolicy.CROP,
        runtime: Runtime | None = None,
        pool: int = 1,
    ) -> None:
        if int(pool) < 1:
            raise EdgeError(f"the interpreter pool must hold at least 1 interpreter, got {pool}")
        self.model_path = Path(model_path)
        self.manifest = manifest
        self.runtime = runtime or find_runtime()
        self.num_threads = num_threads
        self.resize_policy = ResizePolicy(resize_policy)
        preferred = manifest.signature_key if manifest else None
        first = Engine(self.model_path, num_threads, self.runtime, preferred)
        self._engines = [first] + [
            Engine(self.model_path, num_threads, self.runtime, first.signature_key) for _ in range(int(pool) - 1)
        ]
        self.resolution = first.resolution
        self.image_dtype = first.image_dtype
        self.image_quantization = first.image_quantization
        self.num_classes = first.num_classes
        self.labels = self._check_labels(labels)
        self._place(first)
        # The first classifier's states start in the input tensors: alone, it steps as it always did.
        first.resident = self._state
        self.reset()

    def _place(self, engine: Engine) -> None:
        """Run this classifier on ``engine``, with a fresh state set of its own."""
        self._engine = engine
        engine.users += 1
        self._state: StateSet = engine.new_state_set()
        self.steps = 0
        self._history = 0

    # ---- construction -------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        labels: str | Path | list[str] | None = None,
        num_threads: int | None = None,
        resize_policy: ResizePolicy | str | None = None,
        runtime: str | None = None,
        pool: int = 1,
    ) -> StreamingClassifier:
        """Open a model directory (model.tflite + manifest.json + labels.txt) or a .tflite file."""
        path = Path(path)
        if path.is_dir():
            model_path, folder = path / MODEL_NAME, path
            if not model_path.is_file():
                raise EdgeError(f"{path} has no {MODEL_NAME}; {MAKE_MODEL_HINT}")
        elif path.exists():
            model_path, folder = path, path.parent
        else:
            raise EdgeError(f"model {path} does not exist; {MAKE_MODEL_HINT}")
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
            pool=pool,
        )

    def fork(self) -> StreamingClassifier:
        """Another stream on the same loaded model: shared interpreter(s), states of its own.

        The fork starts with no history; its step count, reset and windows
        are its own. It goes to the pool's least used interpreter. Costs its
        state arrays only (:attr:`state_bytes`). Each fork belongs to one
        thread at a time; different forks may step from different threads.
        """
        clone = copy.copy(self)
        clone._place(min(self._engines, key=lambda e: e.users))
        return clone

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
    def interpreter(self) -> Any:
        """The interpreter this classifier steps on (shared with the forks placed on it)."""
        return self._engine.interpreter

    @property
    def signature_key(self) -> str:
        return self._engine.signature_key

    @property
    def input_details(self) -> dict[str, Any]:
        return self._engine.input_details

    @property
    def output_details(self) -> dict[str, Any]:
        return self._engine.output_details

    @property
    def states(self) -> list[StateSlot]:
        """The state tensors. Their ``input_view()`` shows this classifier's states only while it
        is the one whose states are in the interpreter (always, for a classifier never forked)."""
        return self._engine.slots

    @property
    def _pools(self) -> list[tuple[StateSlot, StateSlot]]:
        return self._engine.pool_pairs

    @property
    def pool_size(self) -> int:
        """Interpreters loaded for this model and its forks."""
        return len(self._engines)

    @property
    def engine_index(self) -> int:
        """Which interpreter of the pool this classifier runs on."""
        return next(i for i, e in enumerate(self._engines) if e is self._engine)

    @property
    def state_bytes(self) -> int:
        """Memory of one state set: what a fork costs."""
        return self._engine.state_bytes()

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
        return bool(self._engine.pool_pairs)

    @property
    def history_frames(self) -> int:
        """How many frames the pooling states have accumulated (0 after reset)."""
        return self._history

    def _count_in(self, arrays: StateSet) -> int:
        """The pools' frame count held in ``arrays`` (the step count if the pools are not known)."""
        slot = self._engine.count_slot
        return self.steps if slot is None else int(arrays[slot].reshape(-1)[0])

    # ---- stepping -------------------------------------------------------
    def reset(self) -> None:
        """Forget all history: every state back to its 'nothing seen' value."""
        engine = self._engine
        with engine.lock:
            for array, slot in zip(engine.holding(self._state), engine.slots):
                np.copyto(array, slot.initial)
        self.steps = 0
        self._history = 0

    def prepare(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB uint8 frame -> square uint8 at the model resolution."""
        return resize_square(frame_rgb, self.resolution, self.resize_policy)

    def step_logits(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Feed one RGB frame; returns float32 logits. States advance."""
        return self.step_square(self.prepare(frame_rgb))

    def step_square(self, square: np.ndarray) -> np.ndarray:
        """Feed one frame already at the model resolution (see :meth:`prepare`); float32 logits."""
        engine = self._engine
        with engine.lock:  # this stream's turn: its states go in, its frame, one invoke
            engine.make_resident(self._state)
            engine.encoder.encode_into(square, engine.image_view())
            try:
                engine.interpreter.invoke()
            except RuntimeError as exc:  # an op this runtime lacks, e.g. int8 DIV on tflite-runtime 2.14
                raise EdgeError(
                    f"{self.runtime.name} {self.runtime.version} cannot run {self.model_path}: "
                    f"{' '.join(str(exc).split())[:300]}; try another runtime or a float/selective int8 export"
                ) from None
            logits = dequantize(engine.logits_view().reshape(-1), engine.logits_quantization).copy()
            if engine.users == 1:
                for s in engine.slots:  # alone on this interpreter: the states stay in it
                    s.carry()
                held = engine.holding(self._state)
            else:
                # Shared: the next turn is most likely another stream's, so the new states go
                # straight to this stream's own arrays (one copy now, one when it is next in).
                for s, own in zip(engine.slots, self._state):
                    s.carry_into(own)
                engine.resident = None
                held = self._state
            self.steps += 1
            self._history = self._count_in(held)
        return logits

    def step(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Feed one RGB frame; returns softmax probabilities (float32)."""
        return softmax(self.step_logits(frame_rgb))

    # ---- state access for long-stream policies ---------------------------
    def snapshot(self) -> list[np.ndarray]:
        """A copy of every input state (the history so far)."""
        with self._engine.lock:
            return [a.copy() for a in self._engine.holding(self._state)]

    def restore(self, snapshot: list[np.ndarray]) -> None:
        with self._engine.lock:
            for array, value in zip(self._engine.holding(self._state), snapshot, strict=True):
                np.copyto(array, value)
            self._history = self._count_in(snapshot)

    def rescale_history(self, keep_frames: int) -> None:
        """Shrink every pooling sum to ``keep_frames`` frames' worth, keeping its mean.

        The pool output is sum / count; scaling the sum by keep/count and
        setting count = keep leaves the current average unchanged (no jump,
        no blind spot) while giving new frames more weight from now on.
        """
        engine = self._engine
        with engine.lock:
            arrays = engine.holding(self._state)
            for (buf_at, count_at), (buf, _) in zip(engine.pool_positions, engine.pool_pairs):
                counts, view = arrays[count_at], arrays[buf_at]
                n = int(counts.reshape(-1)[0])
                if n <= keep_frames:
                    continue
                factor = np.float32(keep_frames / n)
                if buf.input_quantization is None:
                    view *= factor
                else:
                    real = dequantize(view, buf.input_quantization) * factor
                    requantize_into(real, buf.input_quantization, view)
                counts.fill(keep_frames)
            self._history = self._count_in(arrays)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z, dtype=np.float32)
    return e / e.sum()
