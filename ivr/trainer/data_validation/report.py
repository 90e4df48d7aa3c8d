"""What ``ivr data validate`` found: problems, each at a file and line."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # what was checked, for the summary

    def add(self, path: str, node: yaml.Node | int | None, message: str) -> None:
        self.problems.append(Problem(path, _line(node), message))


def _line(node: yaml.Node | int | None) -> int:
    if isinstance(node, int):
        return node
    return node.start_mark.line + 1 if node is not None else 1
