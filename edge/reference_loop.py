"""The yardstick: the TensorFlow examples' Raspberry Pi video classification loop.

``movinet-edge bench`` compares our loop with the loop people start from:
tensorflow/examples, ``lite/examples/video_classification/raspberry_pi``
(``video_classifier.py`` + ``classify.py``). Its per-frame work is kept as it
is there, because that work is what the comparison is about:

- a signature runner called with a dict of every state plus the image, so each
  call resizes, allocates, copies in and copies out all 40+ tensors, and the
  returned dict becomes the next call's states;
- states start as ``np.zeros`` of the input dtype;
- ``cv2.resize`` of every fed frame to the input size (stretching, default
  interpolation), a float32 ``(x - 0) / 255`` and two new axes;
- softmax with ``np.exp``, a Python ``sorted`` of every class, a
  ``Category`` per class, the allow/deny/threshold filters, then the top
  ``max_results``;
- ``cap.read()`` of every frame, ``cvtColor`` BGR->RGB of the fed ones, fed at
  5 fps by the ``diff * fps >= 1 - 0.1`` rule.

Adapted, each in the reference's favour or needed to run it at all:

- the rate rule reads the frame's presentation time instead of
  ``time.time()``: a file read faster than real time would otherwise feed
  almost no frames; with media time both loops see the same frames of a clip;
- the camera-only work (mirroring with ``cv2.flip``, ``putText`` of fps and
  results, ``imshow``/``waitKey``) is left out, as our loop runs without sinks
  in the benchmark: the reference does strictly less work than it would live;
- the interpreter comes from :func:`~movinet_edge.runtime.find_runtime` so the
  same runtime runs both loops;
- a model whose image input is quantized (the naive int8 recipe) cannot take
  the float32 the reference makes: the frame is quantized with the input's
  parameters first (what a user of the reference would have to add), and
  :attr:`ReferenceVideoClassifier.adapted` says so.

This is a benchmark yardstick, not a second runtime: it reports no accuracy
(its zero int8 states are not the zero point, and it carries states without
requantization), only the cost of its loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .errors import EdgeError
from .runtime import Runtime, find_runtime

# classify.py: "Ensure the input images are fed to the model at this fps."
MODEL_FPS = 5.0
MODEL_FPS_ERROR_RANGE = 0.1


@dataclass
class ReferenceOptions:
    """``VideoClassifierOptions`` of the reference (a NamedTuple there)."""

    label_allow_list: list[str] | None = None
    label_deny_list: list[str] | None = None
    max_results: int = 5
    num_threads: int = 1
    score_threshold: float = 0.0


class Category(NamedTuple):
    label: str
    score: float


class ReferenceVideoClassifier:
    """``VideoClassifier`` from the reference, step for step."""

    _MODEL_INPUT_SIGNATURE_NAME = "image"
    _MODEL_OUTPUT_SIGNATURE_NAME = "logits"
    _MODEL_INPUT_MEAN = 0
    _MODEL_INPUT_STD = 255

    def __init__(
        self,
        model_path: str | Path,
        label_file: str | Path,
        options: ReferenceOptions | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        options = options or ReferenceOptions()
        runtime = runtime or find_runtime()
        interpreter = runtime.interpreter_class(model_path=str(model_path), num_threads=options.num_threads)
        try:
            signature = interpreter.get_signature_runner()
        except ValueError:
            # The reference assumes one signature; a model with several gets its first.
            signature = interpreter.get_signature_runner(next(iter(interpreter.get_signature_list())))

        with open(label_file) as f:
            lines = f.readlines()
            self._label_list = [line.replace("\n", "") for line in lines]

        details = signature.get_input_details()
        if self._MODEL_INPUT_SIGNATURE_NAME not in details:
            raise EdgeError(f"{model_path} has no 'image' input; the reference loop needs a MoViNet stream model")
        input_shape = details[self._MODEL_INPUT_SIGNATURE_NAME]["shape"]
        input_shape = np.delete(input_shape, np.where(input_shape == 1))
        self._input_height = int(input_shape[0])
        self._input_width = int(input_shape[1])

        image = details[self._MODEL_INPUT_SIGNATURE_NAME]
        self._image_dtype = np.dtype(image["dtype"])
        scale, zero_point = image.get("quantization", (0.0, 0))
        self._image_quantization = (float(scale), int(zero_point)) if self._image_dtype.kind in "iu" else None
        #: What had to change for this model (empty: the reference as published).
        self.adapted: list[str] = ["quantized image input"] if self._image_quantization else []

        self._signature = signature
        self._options = options
        self._internal_states: dict[str, np.ndarray] = {}
        self.clear()

    def clear(self) -> None:
        """Clear the internal state of the model to start classifying a new scene."""
        init_states = {
            name: np.zeros(signature["shape"], dtype=signature["dtype"])
            for name, signature in self._signature.get_input_details().items()
        }
        init_states.pop(self._MODEL_INPUT_SIGNATURE_NAME)
        self._internal_states = init_states

    def _preprocess(self, image: np.ndarray) -> np.ndarray:
        input_tensor = cv2.resize(image, (self._input_width, self._input_height))
        input_tensor = input_tensor[np.newaxis, np.newaxis]
        input_tensor = np.float32(input_tensor - self._MODEL_INPUT_MEAN) / self._MODEL_INPUT_STD
        if self._image_quantization is not None:  # adaptation, see the module docstring
            scale, zero_point = self._image_quantization
            info = np.iinfo(self._image_dtype)
            input_tensor = np.clip(np.rint(input_tensor / scale + zero_point), info.min, info.max).astype(
                self._image_dtype
            )
        return input_tensor

    def classify(self, frame: np.ndarray) -> list[Category]:
        """Classify one RGB frame; frames of a video must come in sequence."""
        frame = self._preprocess(frame)
        outputs = self._signature(**self._internal_states, image=frame)
        logits = outputs.pop(self._MODEL_OUTPUT_SIGNATURE_NAME)
        self._internal_states = outputs
        return self._postprocess(logits)

    def _postprocess(self, logits: np.ndarray) -> list[Category]:
        exp_logits = np.exp(np.squeeze(logits, axis=0))
        probabilities = exp_logits / np.sum(exp_logits)

        prob_descending = sorted(range(len(probabilities)), key=lambda k: probabilities[k], reverse=True)
        categories = [Category(label=self._label_list[idx], score=probabilities[idx]) for idx in prob_descending]

        filtered_results = categories
        if self._options.label_deny_list is not None:
            filtered_results = list(
                filter(lambda category: category.label not in self._options.label_deny_list, filtered_results)
            )
        if self._options.label_allow_list is not None:
            filtered_results = list(
                filter(lambda category: category.label in self._options.label_allow_list, filtered_results)
            )
        if self._options.score_threshold is not None:
            filtered_results = list(
                filter(lambda category: category.score >= self._options.score_threshold, filtered_results)
            )
        if self._options.max_results > 0:
            result_count = min(len(filtered_results), self._options.max_results)
            filtered_results = filtered_results[:result_count]
        return filtered_results


@dataclass
class ReferenceRun:
    """One pass of the reference loop over a video file."""

    frames_read: int = 0
    steps: int = 0
    wall_s: float = 0.0
    classify_ms: list[float] = field(default_factory=list)  # time per inference, as classify.py shows it
    last: list[Category] = field(default_factory=list)


def run_reference_loop(
    classifier: ReferenceVideoClassifier,
    video: str | Path,
    model_fps: float = MODEL_FPS,
    max_steps: int | None = None,
) -> ReferenceRun:
    """classify.py's ``run()`` over a video file, as fast as the loop goes.

    The clock starts at the first read (opening the file is not the loop's
    work, as it is not ours). The classifier is not cleared here: the caller
    decides whether a pass is a new scene, as with the reference.
    """
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise EdgeError(f"cannot read video {video}: not a video OpenCV can decode")
    run = ReferenceRun()
    last_inference_start_time = float("-inf")
    perf = time.perf_counter
    try:
        start = perf()
        while cap.isOpened():
            success, image = cap.read()
            if not success:
                break
            run.frames_read += 1
            current_frame_start_time = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            diff = current_frame_start_time - last_inference_start_time
            if diff * model_fps >= (1 - MODEL_FPS_ERROR_RANGE):
                last_inference_start_time = current_frame_start_time
                t0 = perf()
                frame_rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                run.last = classifier.classify(frame_rgb)
                run.classify_ms.append((perf() - t0) * 1000.0)
                run.steps += 1
                if max_steps is not None and run.steps >= max_steps:
                    break
        run.wall_s = perf() - start
    finally:
        cap.release()
    if run.frames_read == 0:
        raise EdgeError(f"video {video} has no frames that could be decoded")
    return run
