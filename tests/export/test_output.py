"""StagedOutput and check_target on a real file system.

An export directory must appear whole or not at all, an existing model is
replaced only with --force (and survives any failure), and an output that
cannot be written is refused before minutes of conversion, not after.
No TensorFlow here: these run in milliseconds.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from movinet_export.errors import ExportError
from movinet_export.output import StagedOutput, check_target


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime (ns): what 'left untouched' means."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def hidden_leftovers(parent: Path) -> list[str]:
    """Staging folders, backups or write probes left beside the target."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def existing_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(b"old model")
    (folder / "labels.txt").write_text("old\n")
    return folder


def one_line(error: pytest.ExceptionInfo[ExportError]) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def test_output_appears_complete_and_readable(tmp_path):
    target = tmp_path / "models" / "a0_stream_float32"  # parents are created

    with StagedOutput(target, force=False) as staging:
        assert staging.parent == target.parent and staging.name.startswith(".a0_stream_float32.staging-")
        (staging / "model.tflite").write_bytes(b"new model")
        assert not target.exists()  # nothing visible until the end

    assert (target / "model.tflite").read_bytes() == b"new model"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # mkdtemp's 0700 would hide it from services
    assert hidden_leftovers(target.parent) == []


def test_failure_inside_leaves_nothing(tmp_path):
    target = tmp_path / "out"

    with pytest.raises(RuntimeError):
        with StagedOutput(target, force=False) as staging:
            (staging / "model.tflite").write_bytes(b"half")
            raise RuntimeError("conversion died")

    assert not target.exists()
    assert hidden_leftovers(tmp_path) == []


def test_existing_output_is_refused_without_force(tmp_path):
    target = existing_model(tmp_path / "out")
    before = snapshot(target)

    with pytest.raises(ExportError) as error:
        with StagedOutput(target, force=False):
            pytest.fail("the staging folder must not be created")

    assert "already exists; pass --force" in one_line(error)
    assert snapshot(target) == before
    assert hidden_leftovers(tmp_path) == []


def test_force_replaces_the_whole_folder(tmp_path):
    target = existing_model(tmp_path / "out")

    with StagedOutput(target, force=True) as staging:
        (staging / "model.tflite").write_bytes(b"new model")

    assert sorted(p.name for p in target.iterdir()) == ["model.tflite"]  # no stale labels.txt
    assert (target / "model.tflite").read_bytes() == b"new model"
    assert hidden_leftovers(tmp_path) == []  # neither staging nor backup


def test_failed_forced_export_keeps_the_old_model(tmp_path):
    target = existing_model(tmp_path / "out")
    before = snapshot(target)

    with pytest.raises(RuntimeError):
        with StagedOutput(target, force=True) as staging:
            (staging / "model.tflite").write_bytes(b"half")
            raise RuntimeError("parity failed")

    assert snapshot(target) == before
    assert hidden_leftovers(tmp_path) == []


def test_output_appearing_during_the_export_is_not_overwritten(tmp_path):
    target = tmp_path / "out"

    with pytest.raises(ExportError) as error:
        with StagedOutput(target, force=False) as staging:
            (staging / "model.tflite").write_bytes(b"ours")
            existing_model(target)  # another export finished first
            before = snapshot(target)

    assert "appeared during the export" in one_line(error)
    assert snapshot(target) == before
    assert hidden_leftovers(tmp_path) == []


def test_target_that_is_a_file_is_refused_even_with_force(tmp_path):
    target = tmp_path / "out"
    target.write_text("not a model folder")

    with pytest.raises(ExportError) as error:
        check_target(target, force=True)

    assert "is not a directory" in one_line(error)
    assert target.read_text() == "not a model folder"


def test_missing_parents_are_fine_and_not_created_by_the_check(tmp_path):
    target = tmp_path / "a" / "b" / "out"

    check_target(target, force=False)

    assert list(tmp_path.iterdir()) == []  # the check writes nothing that stays


def test_parent_that_is_a_file_is_refused_up_front(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where a folder should be")

    with pytest.raises(ExportError) as error:
        check_target(blocker / "sub" / "out", force=False)

    message = one_line(error)
    assert message.startswith(f"cannot write to {blocker / 'sub'}: ")
    assert "not a directory" in message and "--output" in message
    assert blocker.read_text() == "a file where a folder should be"


def test_unwritable_pseudo_filesystem_is_refused_up_front():
    # /proc refuses new entries to everyone, root included (os.access says
    # root may write there; only an actual attempt tells).
    with pytest.raises(ExportError) as error:
        check_target(Path("/proc/movinet-test-output"), force=False)

    assert one_line(error).startswith("cannot write to /proc: ")
    assert not Path("/proc/movinet-test-output").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder; /proc covers root")
def test_read_only_folder_is_refused_up_front(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(ExportError) as error:
            check_target(parent / "out", force=False)
    finally:
        parent.chmod(0o700)

    assert one_line(error).startswith(f"cannot write to {parent}: ")
    assert list(parent.iterdir()) == []
