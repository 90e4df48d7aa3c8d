"""Reading the YAML files people edit (data, scripts, knowledge), with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ivr.errors import DataFileError, shown


def read_yaml(path: Path, error: type[Exception] = DataFileError) -> Any:
    """Parse a UTF-8 YAML file; a missing or broken file raises ``error`` naming the line."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{shown(path)}: file not found") from None
    except UnicodeDecodeError:
        raise error(f"{shown(path)}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise error(f"{shown(path)}:{where} not valid YAML ({problem})") from None


def read_mapping(path: Path, error: type[Exception] = DataFileError) -> dict[str, Any]:
    data = read_yaml(path, error)
    if not isinstance(data, dict):
        raise error(f"{shown(path)}: expected a mapping at the top level")
    return data
