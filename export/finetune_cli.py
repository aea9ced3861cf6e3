"""``movinet-export finetune``: a thin Typer layer over :mod:`movinet_export.finetune`.

Registered on the main app by :mod:`movinet_export.cli`; importing this
module is cheap (TensorFlow loads only when training starts), so a wrong
value, a wrong folder or an existing output is reported in a second. Its
options share their value types and help style with the main command
(cli_options.py).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_options import COMMAND_SETTINGS, ModelId, ModelOpt, Precision, QuietOpt, Resize
from .errors import ExportError


def parse_unfreeze(value: str) -> int | None:
    """'all' -> None (train everything); a number -> that many blocks from the end."""
    text = value.strip().lower()
    if text == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        raise ExportError(f"--unfreeze {value!r}: pass a number of blocks (0 = backbone frozen) or 'all'") from None
    if count < 0:
        raise ExportError(f"--unfreeze {value!r}: pass a number of blocks (0 = backbone frozen) or 'all'")
    return count


def finetune_command(
    data_dir: Annotated[
        Path,
        typer.Argument(help="Folder of class folders of videos, or of train/ test/ (val/) folders of class folders."),
    ],
    model: ModelOpt = ModelId("a0"),
    checkpoint: Annotated[
        Optional[str],
        typer.Option(help="Start weights: stream checkpoint .tar.gz, folder, prefix or URL. Default: official."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per training step.")] = 8,
    frames: Annotated[int, typer.Option(min=1, help="Frames per clip, sampled at the model's fps.")] = 8,
    unfreeze: Annotated[
        str, typer.Option(help="Backbone blocks to train, counted from the end; 0 = frozen, 'all' = everything.")
    ] = "0",
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate (cosine decay to 5 %).")] = 1e-3,
    resolution: Annotated[Optional[int], typer.Option(min=32, max=1024, help="Input size (default: model's).")] = None,
    resize: Annotated[
        Resize, typer.Option(case_sensitive=False, help="Make frames square as the device will.")
    ] = Resize("crop"),
    augment: Annotated[bool, typer.Option(help="Zoom, brightness and contrast jitter per clip.")] = True,
    flip: Annotated[
        bool, typer.Option(help="Random horizontal flips (not for classes that differ by left/right).")
    ] = False,
    test_fraction: Annotated[
        float, typer.Option(help="Share of each class held out for testing when there is no test/ folder.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed for splits, sampling, augmentation and init.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Parallel video decoders (0: CPU count, at most 8).")] = 0,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Output folder (default models/<data>_<model>_finetuned).")
    ] = None,
    export: Annotated[
        bool, typer.Option(help="Then export streaming TFLite (float32 and int8) into the output folder.")
    ] = False,
    precision: Annotated[
        Optional[list[Precision]],
        typer.Option("--precision", case_sensitive=False,
                     help="With --export: precisions to write (repeatable; default float32, int8)."),
    ] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Download cache (default ~/.cache/movinet-edge).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a streaming MoViNet on your own labelled videos (new classifier head)."""
    from movinet_edge.preprocess import ResizePolicy

    from .finetune import DEFAULT_PRECISIONS, FinetuneOptions, finetune
    from .finetune_export import export_commands, export_finetuned

    if precision and not export:
        raise ExportError("--precision needs --export")
    precisions = tuple(p.value for p in precision) if precision else DEFAULT_PRECISIONS
    options = FinetuneOptions(
        data_dir=data_dir,
        model_id=model.value,
        checkpoint=checkpoint,
        output=output,
        epochs=epochs,
        batch_size=batch_size,
        frames=frames,
        resolution=resolution,
        unfreeze=parse_unfreeze(unfreeze),
        learning_rate=learning_rate,
        resize=ResizePolicy(resize.value),
        augment=augment,
        flip=flip,
        test_fraction=test_fraction,
        seed=seed,
        workers=workers or None,
        cache_dir=cache_dir,
        force=force,
        progress=not quiet,
    )
    result = finetune(options)
    print(f"{result.output}  (test accuracy {result.test.accuracy:.1%} on {result.test.count} videos, "
          f"best epoch {result.best_epoch}, picked on {result.selected_on})")
    if not export:
        # What --export would have done, as commands: same resolution and resize policy,
        # int8 calibrated on the training videos, parity on a test video.
        print("export it (or rerun with --export):")
        for command in export_commands(result.output, precisions):
            print("  " + shlex.join(command))
        return
    for name, path in export_finetuned(result, options, precisions).items():
        print(f"{path}  ({name})")


def register(app: typer.Typer) -> None:
    """Add ``finetune`` to the ``movinet-export`` app."""
    app.command("finetune", no_args_is_help=True, **COMMAND_SETTINGS)(finetune_command)
