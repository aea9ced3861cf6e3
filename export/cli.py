"""``movinet-export``: a thin Typer layer over :mod:`movinet_export.exporter`.

Options are parsed and checked here; all work happens in the library. Every
:class:`ExportError` becomes one line on stderr and its exit code. Nothing
here imports TensorFlow: a wrong value is refused by the parser or by the
exporter's checks in well under a second, and the exporter says "loading
TensorFlow" before the ~6 s import starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_options import (
    APP_SETTINGS,
    DEFAULT_RECIPE,
    INT8_RECIPE_HELP,
    InputDtype,
    Int8RecipeName,
    ModelId,
    ModelOpt,
    QuietOpt,
    Quantize,
    Resize,
    VersionOpt,
)
from .errors import ExportError

app = typer.Typer(
    no_args_is_help=False,
    help="Export a streaming MoViNet (A0-A5) to TFLite with explicit state inputs and outputs.",
    **APP_SETTINGS,
)

# The command that makes the model movinet-edge looks for first (models/a0_stream_int8, see
# tests/export/test_cli_export.py). The device side's hints ("no model found", a --model that
# does not exist) tell the user to run exactly this; keep their words and this one the same.
QUICK_START = "movinet-export --model a0 --quantize"
MAKE_A_MODEL_HINT = f"make one with: {QUICK_START}"

PRECISION_HELP = "Quantize: int8 (what the flag alone means), float16 or dynamic. Omit for float32."


@app.callback(invoke_without_command=True)
def export(
    ctx: typer.Context,
    model: ModelOpt = ModelId("a0"),
    quantize: Annotated[
        Optional[Quantize], typer.Option("--quantize", case_sensitive=False, help=PRECISION_HELP, show_default=False)
    ] = None,
    checkpoint: Annotated[
        Optional[str],
        typer.Option(help="Checkpoint: .tar.gz, directory, prefix or URL (file:// too). Default: official download."),
    ] = None,
    saved_model: Annotated[
        Optional[Path], typer.Option("--saved-model", help="Convert a streaming SavedModel (image + states).")
    ] = None,
    labels: Annotated[
        Optional[str],
        typer.Option(help="Labels file or URL, one label a line. Default: the Kinetics-600 labels (packaged)."),
    ] = None,
    resolution: Annotated[Optional[int], typer.Option(min=32, max=1024, help="Input size in pixels.")] = None,
    num_classes: Annotated[Optional[int], typer.Option(min=1, help="Classes (default: from the checkpoint).")] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Output directory (default: models/<id>_stream_<precision>, "
                                            "and _<recipe> for an int8 recipe other than the default)."),
    ] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Download cache (default ~/.cache/movinet-edge).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
    parity_video: Annotated[
        Optional[Path], typer.Option(help="Clip for the parity report (default: a synthetic motion clip).")
    ] = None,
    calibration_videos: Annotated[
        Optional[list[str]],
        typer.Option(
            "--calibration-videos",
            help="int8: videos, folders or globs to calibrate on (several after one flag, or the flag repeated).",
        ),
    ] = None,
    calibration_frames: Annotated[
        int, typer.Option(min=0, help="int8: frames per calibration stream (0: default).")
    ] = 0,
    input_dtype: Annotated[
        InputDtype,
        typer.Option(case_sensitive=False, help="int8: image input type; uint8 or int8 take camera bytes directly."),
    ] = InputDtype("float32"),
    int8_recipe: Annotated[Int8RecipeName, typer.Option(case_sensitive=False, help=INT8_RECIPE_HELP)] = DEFAULT_RECIPE,
    resize: Annotated[
        Resize,
        typer.Option(case_sensitive=False,
                     help="How the device makes frames square (recorded in the manifest; the parity and "
                          "calibration clips use it too). A fine-tuned model: as it was trained."),
    ] = Resize("crop"),
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from .exporter import Exporter
    from .options import ExportOptions, default_output

    precision = quantize.value if quantize is not None else "float32"
    options = ExportOptions(
        model_id=model.value,
        checkpoint=checkpoint,
        saved_model=saved_model,
        labels=labels,
        resolution=resolution,
        num_classes=num_classes,
        cache_dir=cache_dir,
        parity_video=parity_video,
        calibration_videos=list(calibration_videos or []),
        calibration_frames=calibration_frames,
        input_dtype=input_dtype.value,
        int8_recipe=int8_recipe.value,
        resize_policy=resize.value,
        progress=not quiet,
    )
    target = output or default_output(options.model_id, precision, options.int8_recipe)
    with Exporter(options) as exporter:  # checks everything cheap first, then loads TensorFlow
        manifest = exporter.export(precision, target, force=force)
    size = (target / "model.tflite").stat().st_size
    print(f"{target}  ({manifest.precision}, {size / 1e6:.2f} MB, {len(manifest.states)} states)")


from .finetune_cli import register as register_finetune  # noqa: E402 - after the callback

register_finetune(app)


# Top-level modules of the [export] extra (tensorflow, tf-keras, tf-models-official).
EXPORT_MODULES = frozenset({"tensorflow", "tf_keras", "official", "keras", "tensorflow_hub"})


def _silence_tensorflow_at_exit() -> None:
    """Keep the error line the last line: TensorFlow logs from finalizers at exit.

    A checkpoint that failed to restore leaves TF objects behind whose
    finalizers log one "Value in checkpoint could not be found" WARNING per
    unmatched value when the interpreter exits (over 200 lines for an A1
    checkpoint given to --model a0), burying the one line that matters.
    """
    if "tensorflow" in sys.modules:
        import logging

        logging.getLogger("tensorflow").setLevel(logging.CRITICAL)


# Options that take every path up to the next option, as `--calibration-videos videos/*.mp4`
# gives them after the shell expands the glob (Click options take one value per flag).
MULTI_VALUE_OPTIONS = frozenset({"--calibration-videos"})
# Options whose value may be left out, and what it then is: `--quantize` alone means int8.
# (Click's own optional values take the next option as the value: `--quantize --force`.)
OPTIONAL_VALUES = {"--quantize": "int8"}


def normalize_args(args: list[str]) -> list[str]:
    """Rewrite the command line into what Click parses unambiguously.

    - ``--quantize`` with no value, last or before another option,
      gets its default value: ``--quantize --force`` -> ``--quantize int8 --force``.
    - ``--calibration-videos a b c`` -> ``--calibration-videos a --calibration-videos b ...``:
      the first value after the flag is its own; the ones after it, up to the next
      token that starts with ``-``, are repeated under the same flag.
    """
    out: list[str] = []
    flag: str | None = None  # the multi-value option whose values are being read
    has_value = False
    for i, arg in enumerate(args):
        if arg.startswith("-"):
            flag = arg if arg in MULTI_VALUE_OPTIONS else None
            has_value = False
            out.append(arg)
            if arg in OPTIONAL_VALUES and (i + 1 == len(args) or args[i + 1].startswith("-")):
                out.append(OPTIONAL_VALUES[arg])
        elif flag is not None and has_value:
            out.extend([flag, arg])
        else:
            has_value = flag is not None
            out.append(arg)
    return out


def main() -> None:
    """Console entry point: one line per user error, no traceback."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ chatter hides our progress
    from movinet_edge.errors import EdgeError
    from movinet_edge.exits import run_app

    from .native_logs import converter_logs_silenced

    try:
        with converter_logs_silenced():  # C++ log lines between our progress lines, even with --quiet
            code = run_app(app, "movinet-export", normalize_args(sys.argv[1:]))  # usage error: one line
    except (ExportError, EdgeError) as exc:  # EdgeError: the edge reader and labels, shared with the device
        print(f"error: {exc}", file=sys.stderr)
        _silence_tensorflow_at_exit()
        sys.exit(exc.exit_code)
    except OSError as exc:  # a full disk or a folder that vanished while the output was written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; nothing was written", file=sys.stderr)
        _silence_tensorflow_at_exit()
        sys.exit(1)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in EXPORT_MODULES:
            raise
        # A device install (pip install movinet-edge) has the command but not TensorFlow.
        print(f"error: movinet-export needs {exc.name.split('.')[0]}, which the base install leaves out;"
              " install the workstation extra: pip install 'movinet-edge[export]'", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        sys.exit(130)
    if code == 130:  # Ctrl-C, as Typer reports it
        print("interrupted; nothing was written", file=sys.stderr)
    if code:
        _silence_tensorflow_at_exit()
    sys.exit(code)


if __name__ == "__main__":
    main()
