"""Checkpoints in the official layout, as the model garden's tarballs hold them.

The random-init checkpoint itself is the package's
(:func:`movinet_export.random_checkpoint.save_random_checkpoint`, which the benchmark uses too);
this module packs one like a downloaded tarball and saves one from the command line.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # run as a script: our line, not TensorFlow's start-up chatter

from movinet_export.random_checkpoint import save_random_checkpoint  # noqa: E402 - after the log level

__all__ = ["official_tarball", "save_random_checkpoint"]


def official_tarball(checkpoint_dir: Path, model_id: str, out: Path) -> Path:
    """Pack a checkpoint folder like movinet_<id>_stream.tar.gz (a folder of that name inside)."""
    name = f"movinet_{model_id}_stream"
    path = out / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for file in sorted(checkpoint_dir.iterdir()):
            tar.add(file, arcname=f"{name}/{file.name}")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python tests/helpers/checkpoints.py DIR [--model a0]``: a random-init checkpoint to try the
    export offline (its predictions mean nothing; the official weights give real ones)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default="a0", help="a0..a5")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    prefix = save_random_checkpoint(args.folder, args.model, args.resolution, args.seed)
    print(f"{prefix}  (random init, official layout: pass it with --checkpoint {args.folder})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
