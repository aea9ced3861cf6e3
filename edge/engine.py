"""One loaded interpreter with its tensors bound: the part of a model that several streams share.

A MoViNet stream model takes its states as inputs and returns them as
outputs, so the interpreter itself holds no history: whoever fills the state
inputs owns the next step. Several streams can therefore share one engine
(one copy of the packed weights, one arena) if each keeps its own state set
and the engine knows whose states sit in its input tensors (``resident``).
A classifier alone on its engine keeps its states there (carried output ->
input, as it always was); once forks share the engine, a step copies the
stream's states in and carries the new ones out to the stream's own arrays
(2.7 MB for A0 at 172 px, about 0.3 ms a copy on a small x86 core).

Every use of the tensors happens under the engine's :class:`FairLock`:
streams take turns in the order they asked, none can starve the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgeError
from .fair_lock import FairLock
from .manifest import state_kind
from .preprocess import InputEncoder
from .runtime import Runtime, make_interpreter, release_model_pages
from .states import StateSlot, quantization_of

SIGNATURE_KEYS = ("serving_default", "call")

#: A stream's own copy of every state, in the order of :attr:`Engine.slots`.
StateSet = list[np.ndarray]


def pick_signature(interpreter: Any, model_path: Path, preferred: str | None) -> str:
    """The streaming signature: the manifest's, else a known name, else the only one."""
    signatures = interpreter.get_signature_list()
    if preferred and preferred in signatures:
        return preferred
    for key in SIGNATURE_KEYS:
        if key in signatures:
            return key
    if len(signatures) == 1:
        return next(iter(signatures))
    raise EdgeError(
        f"{model_path} is not a streaming MoViNet: no signature named {' or '.join(SIGNATURE_KEYS)} "
        f"(found: {', '.join(signatures) or 'none'})"
    )


class Engine:
    """An interpreter, its image/logits/state tensors, and whose states it holds now."""

    def __init__(self, model_path: Path, num_threads: int | None, runtime: Runtime,
                 signature_preference: str | None) -> None:  # fmt: skip
        self.model_path = Path(model_path)
        self.interpreter = make_interpreter(self.model_path, num_threads, runtime)
        self.signature_key = pick_signature(self.interpreter, self.model_path, signature_preference)
        self.lock = FairLock()
        #: The state set whose values are in the input tensors now (None: nobody's yet).
        self.resident: StateSet | None = None
        self.users = 0  # classifiers placed on this engine (forks are spread by it)
        self._bind()

    def _bind(self) -> None:
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
        self.image_quantization = quantization_of(image) if self.image_dtype.kind in "iu" else None
        self.image_view = tensor(image["index"])
        self.encoder = InputEncoder(self.image_dtype, self.image_quantization)

        logits = outputs[logits_name]
        self.num_classes = int(np.prod(logits["shape"]))
        self.logits_view = tensor(logits["index"])
        self.logits_quantization = quantization_of(logits) if np.dtype(logits["dtype"]).kind in "iu" else None

        self.slots: list[StateSlot] = []
        for name in state_names:
            din, dout = inputs[name], outputs[name]
            dtype = np.dtype(din["dtype"])
            out_dtype = np.dtype(dout["dtype"])
            iq = quantization_of(din) if dtype.kind in "iu" and dtype != np.int32 else None
            oq = quantization_of(dout) if out_dtype.kind in "iu" and out_dtype != np.int32 else None
            initial = np.zeros(tuple(int(x) for x in din["shape"]), dtype)
            if iq is not None:
                initial.fill(iq.zero_point)
            self.slots.append(
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
        self.pool_pairs = self._pool_pairs()
        position = {id(s): i for i, s in enumerate(self.slots)}
        #: The same pairs as positions in a state set.
        self.pool_positions = [(position[id(b)], position[id(c)]) for b, c in self.pool_pairs]
        #: Where the first pool's frame count is in a state set (None: no pools known by name).
        self.count_slot = self.pool_positions[0][1] if self.pool_positions else None

    def _pool_pairs(self) -> list[tuple[StateSlot, StateSlot]]:
        """(pooling sum, its frame count) pairs, found by their official names."""
        by_name = {s.name: s for s in self.slots}
        pairs = []
        for s in self.slots:
            if s.kind == "pool_buffer":
                count = by_name.get(s.name[: -len("pool_buffer")] + "pool_frame_count")
                if count is not None:
                    pairs.append((s, count))
        return pairs

    # ---- state sets (call with the lock held) -------------------------------
    def new_state_set(self) -> StateSet:
        """A fresh state set ("nothing seen"): a stream's only memory of its own."""
        return [s.initial.copy() for s in self.slots]

    def state_bytes(self) -> int:
        return sum(s.initial.nbytes for s in self.slots)

    def holding(self, state: StateSet) -> StateSet:
        """The arrays that hold ``state``'s values now: the input tensors if resident, else its own."""
        if self.resident is state:
            return [s.input_view() for s in self.slots]
        return state

    def make_resident(self, state: StateSet) -> None:
        """Put ``state`` into the input tensors, saving the one there into its own arrays first."""
        if self.resident is state:
            return
        previous = self.resident
        for i, slot in enumerate(self.slots):
            view = slot.input_view()
            if previous is not None:
                np.copyto(previous[i], view)
            np.copyto(view, state[i])
        self.resident = state

    def release_state(self, state: StateSet) -> None:
        """``state``'s owner is going away: its values need not be saved when the next one comes in."""
        if self.resident is state:
            self.resident = None
