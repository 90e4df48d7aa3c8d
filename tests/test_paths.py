"""Paths the engine writes from a folder and a name never leave the folder (issue 13)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivr.core.paths import inside


@pytest.mark.parametrize("name", [
    "../prompts/ko/utter_greet.wav", "a/../../x.wav", "/etc/passwd", "x\0.wav", "", ".",
    "..", "a/" + "../" * 40 + "x",
])
def test_a_name_that_would_leave_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    assert inside(tmp_path / "recordings", name) is None


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    os.symlink(tmp_path / "elsewhere", folder / "day")
    assert inside(folder, "day/call.wav") is None


def test_ordinary_names_stay_where_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    assert inside(folder, "2026-12-03/abc.wav") == (folder / "2026-12-03" / "abc.wav").resolve()
    assert inside(folder, "．．／x.wav") == (folder / "．．／x.wav").resolve()  # look-alikes
