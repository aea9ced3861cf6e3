"""Where a model's labels come from: ``--labels``, or the Kinetics-600 label file we ship.

The official checkpoints classify the 600 Kinetics-600 classes in the order
of tensorflow/models' label map; that file is packaged here
(label_maps/kinetics_600_labels.txt, see label_maps/README.md), so exporting an
official checkpoint needs no network for its labels. ``$MOVINET_LABELS_URL``
still replaces it with a download for those who set it. The labels are read
before TensorFlow loads, so a missing or unreadable file is refused at once;
their count is checked once the model's class count is known.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

from movinet_edge.manifest import read_labels

from .download import fetch
from .errors import ExportError

KINETICS_600_FILE = "kinetics_600_labels.txt"
LABELS_URL_ENV = "MOVINET_LABELS_URL"


@dataclass(frozen=True)
class Labels:
    names: list[str]
    location: str  # the file or URL they were read from
    given: bool  # passed by the user (else the packaged Kinetics-600 ones)


def kinetics_600_labels() -> list[str]:
    """The packaged Kinetics-600 label map (600 names, the official logits' order)."""
    with as_file(files(__package__) / "label_maps" / KINETICS_600_FILE) as path:
        return read_labels(path)


def load_labels(spec: str | None, cache_dir: Path, progress: bool = True,
                log: Callable[[str], None] = lambda _: None) -> Labels:
    """Read the labels of ``spec`` (a file or URL); None: the Kinetics-600 ones, from the package."""
    if spec is None:
        url = os.environ.get(LABELS_URL_ENV)
        if not url:
            log("no --labels: using the Kinetics-600 labels packaged with movinet-export")
            return Labels(kinetics_600_labels(), f"movinet_export/label_maps/{KINETICS_600_FILE}", given=False)
        log(f"no --labels: using the Kinetics-600 labels {url}")
        path = fetch(url, cache_dir, progress=progress, local="a local labels file with --labels FILE")
        return Labels(_read(path, url), url, given=False)
    if "://" in spec:
        path = fetch(spec, cache_dir, progress=progress, local="the local file with --labels FILE")
    else:
        path = Path(spec)
        if not path.is_file():
            raise ExportError(f"labels file {path} does not exist")
    return Labels(_read(path, spec), spec, given=True)


def check_label_count(labels: Labels, num_classes: int) -> None:
    """As many labels as the model has classes, else one line saying which file to pass."""
    if len(labels.names) == num_classes:
        return
    if not labels.given:
        raise ExportError(f"the model has {num_classes} classes; pass --labels FILE with one label a line")
    raise ExportError(
        f"labels have {len(labels.names)} entries but the model has {num_classes} classes; "
        "pass --labels with one label per class"
    )


def _read(path: Path, spec: str) -> list[str]:
    names = read_labels(path)
    if any(not name for name in names):
        raise ExportError(f"labels file {spec} has empty lines inside it")
    return names
