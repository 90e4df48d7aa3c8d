"""A Vosk model folder as the engine reads it: where it is, the words it can recognise,
and a linked copy with the end-of-utterance silence set from configuration. All blocking."""

from __future__ import annotations

import importlib.util
import struct
import tempfile
from pathlib import Path

from ivr.errors import IvrError, shown


class SpeechModelError(IvrError):
    """A speech model that is missing or unusable."""


def resolve_model_path(spec: str) -> Path:
    """A model folder, or ``package:NAME`` for a model shipped in a Python package."""
    if spec.startswith("package:"):
        name = spec.removeprefix("package:")
        found = importlib.util.find_spec(name)
        if found is None or not found.submodule_search_locations:
            raise SpeechModelError(f"speech model package {name!r} is not installed "
                                   f"(pip install {name.replace('_', '-')})")
        return Path(next(iter(found.submodule_search_locations))) / "model"
    return Path(spec).expanduser()


def read_vocabulary(path: Path) -> frozenset[str]:
    """The words a model can recognise: graph/words.txt, else the output symbol table
    embedded in a lookahead model's Gr.fst (small Vosk models ship only that)."""
    words_txt = path / "graph" / "words.txt"
    if words_txt.is_file():
        return frozenset(line.split()[0] for line in words_txt.read_text("utf-8").splitlines()
                         if line.strip())
    fst = path / "graph" / "Gr.fst"
    if not fst.is_file():
        raise SpeechModelError(
            f"{shown(path)}: no graph/words.txt or graph/Gr.fst; not a Vosk model?")
    return frozenset(_fst_output_symbols(fst))


def _fst_output_symbols(path: Path) -> list[str]:
    """OpenFst's binary header: magic, type, arc type, version, flags, properties, start,
    counts; then the input and output symbol tables when the flags say they are there."""
    with path.open("rb") as f:
        def i32() -> int:
            return struct.unpack("<i", f.read(4))[0]

        def i64() -> int:
            return struct.unpack("<q", f.read(8))[0]

        def string() -> str:
            return f.read(i32()).decode("utf-8", "replace")

        if i32() != 0x7EB2FDD6:
            raise SpeechModelError(f"{shown(path)}: not an OpenFst file")
        string(), string()
        i32()
        flags = i32()
        i64(), i64(), i64(), i64()
        tables: list[list[str]] = []
        for has_table in (flags & 1, flags & 2):
            if has_table:
                i32(), string(), i64()
                size = i64()
                table = []
                for _ in range(size):
                    table.append(string())
                    i64()
                tables.append(table)
        if not flags & 2:
            raise SpeechModelError(f"{shown(path)}: no output symbol table")
        return tables[-1]


def with_endpointing(path: Path, end_of_speech_ms: int) -> tempfile.TemporaryDirectory:
    """The model as a folder of links, with its end-of-utterance silence set from config.

    Vosk 0.3.45 reads endpointing only from conf/model.conf; the overlay changes that one
    file and leaves the user's model folder untouched.
    """
    overlay = tempfile.TemporaryDirectory(prefix=f"vosk-{path.name}-")
    root = Path(overlay.name)
    for entry in path.iterdir():
        if entry.name != "conf":
            (root / entry.name).symlink_to(entry.resolve())
    (root / "conf").mkdir()
    conf = path / "conf"
    for entry in conf.iterdir() if conf.is_dir() else []:
        if entry.name != "model.conf":
            (root / "conf" / entry.name).symlink_to(entry.resolve())
    lines = [ln for ln in (conf / "model.conf").read_text().splitlines()
             if not ln.startswith("--endpoint.rule")] if (conf / "model.conf").is_file() else []
    seconds = end_of_speech_ms / 1000
    lines += [f"--endpoint.rule2.min-trailing-silence={seconds:.2f}",
              f"--endpoint.rule3.min-trailing-silence={2 * seconds:.2f}",
              f"--endpoint.rule4.min-trailing-silence={4 * seconds:.2f}"]
    (root / "conf" / "model.conf").write_text("\n".join(lines) + "\n")
    return overlay
