"""The training data files as text: examples, dialect phrases and lexicon terms appended
to them, never rewritten from parsed YAML, so every comment and line people wrote stays as it
was. Each change is checked to have landed where meant before the file is replaced.
All synchronous (the console runs these in its executor).
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ivr.errors import DataFileError, shown

_DISCUSSED = re.compile(r"([\u4e00-\u9fff]+(?:/[\u4e00-\u9fff]+)*) \(")
# labelled.yml as the first label creates it.
NEW_FILE = ('# Utterances trainers labelled from calls (`ivr review label`, the console).\n'
            '# Appended to by the engine; one block per labelling, who and when in the\n'
            '# metadata. Edit or delete examples freely; the next `ivr train` uses it.\n'
            'version: "3.1"\n\nnlu:\n')

_F = TypeVar("_F", bound=Callable[..., Any])
_FILES = threading.Lock()


def one_at_a_time(fn: _F) -> _F:
    """Two trainers on the console label at once: each checks and appends to the data
    files in turn, so neither misses the other's example nor overwrites it."""

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _FILES:
            return fn(*args, **kwargs)

    return locked  # type: ignore[return-value]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_examples(path: Path, intent: str, examples: list[dict[str, Any]]) -> None:
    """One block of examples-with-metadata at the end of the file (created if missing)."""
    if not examples:
        return
    lines = [f"- intent: {intent}", "  examples:"]
    for ex in examples:
        meta = ", ".join(f"{k}: {_quoted(v)}" for k, v in ex["metadata"].items())
        lines += [f"  - text: {_quoted(ex['text'])}", f"    metadata: {{{meta}}}"]
    old = path.read_text(encoding="utf-8") if path.is_file() else NEW_FILE
    new = old + ("" if old.endswith("\n") else "\n") + "\n".join(lines) + "\n"

    def landed(data: Any) -> bool:  # the block is the last item of `nlu`
        block = (data or {}).get("nlu") or [{}]
        return block[-1].get("intent") == intent and len(block[-1].get("examples") or []) == len(
            examples)

    write_checked(path, new, landed, "labelled examples")


def _quoted(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def write_checked(path: Path, text: str, landed: Callable[[Any], bool], what: str) -> None:
    """Write ``text`` over ``path`` (atomically) if it parses and ``landed`` finds the
    change in it: an appended line in an unusual file must not silently go elsewhere."""
    try:
        ok = landed(yaml.safe_load(text))
    except (yaml.YAMLError, AttributeError, TypeError, IndexError, KeyError):
        ok = False
    if not ok:
        raise DataFileError(f"{shown(path)}: could not add the {what} at the end of the file "
                            "(is its layout unusual?): add them by hand")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)



def left_out_terms(path: Path) -> set[str]:
    """Words the lexicon's comments discuss as ``term (the everyday word it would eat)``:
    those not in its list were left out on purpose."""
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            for words in _DISCUSSED.findall(line):
                found.update(words.split("/"))
    return found


def add_dialect_phrase(path: Path, dialect: str, key: str, mandarin: str, by: str) -> Path:
    """``key: mandarin`` after the last entry of the dialect's section."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines)
                  if line.startswith(f"  {dialect}:")), None)
    if start is None:
        raise DataFileError(f"{shown(path)}: no section {dialect}")
    last = start
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped and not lines[i].startswith("   "):  # the next section (or key)
            break
        if stripped and not stripped.startswith("#"):
            last = i
    entry = f"    {_plain(key)}: {_plain(mandarin)}  # {by} {utc_now()[:10]}\n"
    new = "".join([*lines[:last + 1], entry, *lines[last + 1:]])
    write_checked(path, new, lambda d: d["dialects"][dialect].get(key) == mandarin,
                  "synonym")
    return path


def add_lexicon_term(path: Path, term: str, by: str) -> Path:
    """``- term`` after the last item of the ``terms:`` list."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "terms:"), None)
    if start is None:
        raise DataFileError(f"{shown(path)}: no 'terms:' list")
    last = start
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped and not lines[i].startswith(" "):
            break
        if stripped.startswith("- "):
            last = i
    entry = f"  - {_plain(term)}  # {by} {utc_now()[:10]}\n"
    new = "".join([*lines[:last + 1], entry, *lines[last + 1:]])
    write_checked(path, new, lambda d: term in d["terms"], "term")
    return path


def _plain(text: str) -> str:
    """``text`` as a YAML scalar: as is where it reads back the same, else quoted."""
    try:
        same = yaml.safe_load(f"k: {text}") == {"k": text}
    except yaml.YAMLError:
        same = False
    return text if same and "#" not in text else json.dumps(text, ensure_ascii=False)
