"""Animated prediction plots: each model step's frame above the top-k probabilities over time.

The MoViNet tutorial's jumping-jacks animation, for ``movinet-edge classify
VIDEO --plot out.gif``: one output frame per model step, the frame the model
saw on top, below it the probabilities of the clip's top labels as lines that
grow up to a red playhead, with the whole curve faint behind them.

matplotlib is an optional extra (``pip install 'movinet-edge[plot]'``): a
device that only classifies does not carry it. It is imported when a plot is
made, and a missing one is a one-line :class:`EdgeError`. Figures are drawn
with the object API on an Agg canvas, never ``pyplot``, so a library user's
backend and global state are left alone.

Output is written to a hidden temporary file beside the target and renamed
into place at the end: the path holds a complete animation or nothing. GIF
frames go through Pillow (matplotlib depends on it; Pillow merges identical
consecutive frames and keeps their total duration), MP4 through OpenCV's
``mp4v`` writer, like the annotated-video sink.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import EdgeError
from .files import AtomicFile, check_writable

PLOT_FORMATS = (".gif", ".mp4")
MISSING_MATPLOTLIB = "--plot needs matplotlib: pip install 'movinet-edge[plot]'"


@dataclass
class PlotOptions:
    """Size and pace of the animation.

    ``height`` follows the tutorial's ``figure_height=500``; the width keeps
    its 6.5 x 7 figure's proportions. ``fps`` is the playback rate (None: the
    rate the model stepped at, so the animation runs in real time).
    ``thumbnail`` bounds the longest side of the frames kept for the plot.
    """

    top_k: int = 5
    width: int = 464
    height: int = 500
    dpi: int = 100
    fps: float | None = None
    thumbnail: int = 320
    log_scale: bool = True

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise EdgeError(f"top-k must be at least 1, got {self.top_k}")
        if self.width < 64 or self.height < 64:
            raise EdgeError(f"plot size {self.width}x{self.height} is too small; use at least 64x64")
        if self.fps is not None and not self.fps > 0:
            raise EdgeError(f"plot fps must be positive, got {self.fps}")


def require_matplotlib() -> Any:
    """matplotlib, or the one-line error that says how to get it."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from PIL import Image  # noqa: F401 - matplotlib's own dependency, used for GIF
    except ImportError:
        raise EdgeError(MISSING_MATPLOTLIB) from None
    return matplotlib


def check_plot_path(path: Path) -> None:
    """Fail before the work, not after: the format, the folder, and matplotlib itself."""
    check_writable(path, PLOT_FORMATS, what="--plot")
    require_matplotlib()


# --- frames the model saw -------------------------------------------------------------------


class Thumbnails(Sequence[np.ndarray]):
    """Small RGB frames kept as JPEG bytes (a long clip must not hold every frame decoded)."""

    def __init__(self) -> None:
        self._encoded: list[bytes] = []

    def append(self, rgb: np.ndarray, max_side: int) -> None:
        h, w = rgb.shape[:2]
        scale = max_side / max(h, w)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise EdgeError("cannot encode a frame for the plot (OpenCV has no JPEG encoder)")
        self._encoded.append(buf.tobytes())

    def clear(self) -> None:
        self._encoded.clear()

    def __len__(self) -> int:
        return len(self._encoded)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        bgr = cv2.imdecode(np.frombuffer(self._encoded[index], np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class FrameRecorder:
    """A classifier that keeps a thumbnail of every frame it steps on, for the plot.

    Wraps any classifier of the pipeline's protocol; :meth:`reset` (a new
    clip) forgets the frames with the states.
    """

    def __init__(self, classifier: Any, max_side: int = PlotOptions.thumbnail) -> None:
        self.classifier = classifier
        self.max_side = max_side
        self.frames = Thumbnails()

    @property
    def labels(self) -> list[str]:
        return self.classifier.labels

    @property
    def fps(self) -> float:
        return self.classifier.fps

    def reset(self) -> None:
        self.frames.clear()
        self.classifier.reset()

    def step(self, frame_rgb: np.ndarray) -> np.ndarray:
        self.frames.append(frame_rgb, self.max_side)
        return self.classifier.step(frame_rgb)


# --- what to plot -------------------------------------------------------------------------------


def select_labels(probabilities: np.ndarray, k: int) -> list[int]:
    """The classes worth a line, as the tutorial picks them.

    The last step's best class first (the clip's answer), then the classes
    that were most often among a step's top k (ties: higher peak first).
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    steps, classes = probs.shape
    k = max(1, min(k, classes))
    chosen = [int(np.argmax(probs[-1]))]
    per_step_top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    counts = np.bincount(per_step_top.reshape(-1), minlength=classes)
    peaks = probs.max(axis=0)
    order = np.lexsort((np.arange(classes), -peaks, -counts))
    for idx in order:
        if len(chosen) >= k or counts[idx] == 0:
            break
        if int(idx) not in chosen:
            chosen.append(int(idx))
    return chosen


def _short(label: str, width: int = 26) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


class _Renderer:
    """One figure, updated step by step (a new figure per step is many times slower)."""

    def __init__(self, result: Any, chosen: list[int], first: np.ndarray, options: PlotOptions) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.options = options
        self.probs = np.asarray(result.probabilities, dtype=np.float32)
        self.labels = list(result.labels)
        self.chosen = chosen
        t = np.asarray(result.timestamps, dtype=np.float64)
        self.x = t - t[0] if len(t) else t
        period = 1.0 / options.fps if options.fps else 0.2
        duration = max(float(self.x[-1]) if len(self.x) else 0.0, period)

        fig = Figure(figsize=(options.width / options.dpi, options.height / options.dpi), dpi=options.dpi)
        self.canvas = FigureCanvasAgg(fig)
        grid = fig.add_gridspec(8, 1)
        self.ax_image = fig.add_subplot(grid[:-3, 0])
        ax = fig.add_subplot(grid[-3:, 0])
        self.image = self.ax_image.imshow(first, interpolation="nearest")
        self.ax_image.axis("off")
        self.title = self.ax_image.set_title(" ", fontsize=9)

        y = self.probs[:, chosen].T  # [k, steps]
        self.lines = []
        for i, idx in enumerate(chosen):
            ax.plot(self.x, y[i], linestyle=":", linewidth=1.0, color="gray")
            (line,) = ax.plot(self.x[:1], y[i, :1], linewidth=1.8, label=_short(self.labels[idx]))
            self.lines.append(line)
        self.y = y
        positive = y[y > 0]
        self.low = float(positive.min()) * 0.8 if positive.size else 1e-6
        self.high = float(y.max()) if y.size else 1.0
        (self.playhead,) = ax.plot([0, 0], [self.low, self.high], color="red", linewidth=1.2)
        (self.dot,) = ax.plot([0], [self.high], "o", color="red", markersize=4)
        ax.grid(which="major", linestyle=":", linewidth=1.0, alpha=0.3)
        ax.grid(which="minor", linestyle=":", linewidth=0.5, alpha=0.3)
        ax.set_xlim(0, duration)
        if options.log_scale and self.low > 0:
            ax.set_yscale("log")
            ax.set_ylim(self.low * 0.9, max(self.high * 1.25, self.low * 2))
        else:
            ax.set_ylim(0, max(self.high * 1.1, 1e-6))
        ax.set_xlabel("Time (s)", fontsize=8)
        ax.set_ylabel("Probability", fontsize=8)
        ax.tick_params(labelsize=7)
        self.legend = ax.legend(loc="lower left", fontsize=6, framealpha=0.7)
        fig.tight_layout(pad=0.4)
        # Blitting: axes, ticks, grid and the faint curves are drawn once; each
        # step redraws only what moves (text layout is most of a full draw).
        self.ax = ax
        self.moving = [self.image, self.title, *self.lines, self.playhead, self.dot, self.legend]
        for artist in self.moving:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)

    def render(self, step: int, frame: np.ndarray) -> np.ndarray:
        """RGB uint8 [height, width, 3] for one step."""
        self.image.set_data(frame)
        x = self.x[: step + 1]
        for i, line in enumerate(self.lines):
            line.set_data(x, self.y[i, : step + 1])
        t = float(self.x[step])
        self.playhead.set_data([t, t], [self.low, self.high])
        self.dot.set_data([t], [self.high])
        best = int(np.argmax(self.probs[step]))
        self.title.set_text(f"{t:5.1f} s   {_short(self.labels[best], 30)} {self.probs[step, best]:.3f}")
        self.canvas.restore_region(self.background)
        for artist in self.moving:  # in this order: the legend stays on top of the lines
            artist.axes.draw_artist(artist)
        rgb = np.asarray(self.canvas.buffer_rgba())[..., :3]
        size = (self.options.width, self.options.height)
        if (rgb.shape[1], rgb.shape[0]) != size:  # a pixel of float rounding in the figure size
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(rgb)


def render_plot(result: Any, frames: Sequence[np.ndarray], options: PlotOptions | None = None) -> Iterator[np.ndarray]:
    """The animation's frames, one per model step (RGB, options.height x options.width)."""
    options = options or PlotOptions()
    require_matplotlib()
    steps = int(result.steps)
    if steps == 0:
        raise EdgeError("nothing to plot: the model made no steps")
    if len(frames) != steps or len(result.probabilities) != steps:
        raise ValueError(
            f"{len(frames)} frames and {len(result.probabilities)} probability rows for {steps} steps; "
            "classify with keep_probabilities=True through a FrameRecorder"
        )
    first = frames[0]
    renderer = _Renderer(result, select_labels(result.probabilities, options.top_k), first, options)
    shape = first.shape
    for step in range(steps):
        frame = first if step == 0 else frames[step]
        if frame.shape != shape:  # a stream that changed resolution: keep the picture's size
            frame = cv2.resize(frame, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        yield renderer.render(step, frame)


# --- writers ------------------------------------------------------------------------------------


def _write_gif(frames: Iterator[np.ndarray], staged: AtomicFile, fps: float) -> int:
    from PIL import Image

    # Palette images: a third of RGB's memory while the whole animation is held for
    # saving. Fast octree is ~10x faster than the default median cut, and looks the same here.
    fast_octree = getattr(getattr(Image, "Quantize", None), "FASTOCTREE", 2)  # enum since Pillow 9.1
    images = [Image.fromarray(rgb).quantize(colors=256, method=fast_octree) for rgb in frames]
    duration = max(20, int(round(1000.0 / fps)))
    images[0].save(staged.path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return len(images)


def _write_mp4(frames: Iterator[np.ndarray], staged: AtomicFile, fps: float, size: tuple[int, int]) -> int:
    writer = cv2.VideoWriter(str(staged.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        writer.release()
        raise EdgeError(f"cannot write {staged.target}: OpenCV has no mp4v encoder; use a .gif name")
    count = 0
    try:
        for rgb in frames:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        writer.release()
    return count


def playback_fps(result: Any, options: PlotOptions) -> float:
    """The options' rate, else the rate the model stepped at (median interval), else 5."""
    if options.fps:
        return float(options.fps)
    t = np.asarray(result.timestamps, dtype=np.float64)
    if len(t) >= 2:
        interval = float(np.median(np.diff(t)))
        if interval > 0:
            return 1.0 / interval
    return 5.0


def write_prediction_plot(
    result: Any,
    frames: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    top_k: int = 5,
    options: PlotOptions | None = None,
    progress: bool = True,
) -> int:
    """Write the animation of a :class:`~movinet_edge.pipeline.ClipResult` to a .gif or .mp4.

    ``frames``: the frames the model stepped on, one per step (a
    :class:`FrameRecorder`'s). Returns the number of frames written.
    """
    from .progress import Progress

    path = Path(path)
    options = options or PlotOptions(top_k=top_k)
    check_plot_path(path)
    fps = playback_fps(result, options)
    staged = AtomicFile(path)
    try:
        with Progress(int(result.steps), f"plotting {path.name}", unit="frames", quiet=not progress) as bar:

            def counted() -> Iterator[np.ndarray]:
                for rgb in render_plot(result, frames, options):
                    yield rgb
                    bar.update()

            if path.suffix.lower() == ".gif":
                written = _write_gif(counted(), staged, fps)
            else:
                written = _write_mp4(counted(), staged, fps, (options.width, options.height))
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    return written
