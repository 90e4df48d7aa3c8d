"""The data files as composed YAML nodes, which keep the line each value is on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from ivr.project import Project
from ivr.trainer.data_validation.report import Report


def node_items(node: yaml.Node | None) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    """A mapping node's (key node, value node) pairs; nothing for anything else."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                yield key, value


def node_get(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    for k, v in node_items(node):
        if k.value == key:
            return k, v
    return None, None


def node_seq(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def node_scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


class YamlFiles:
    """Composed YAML files, each read once; a file that is not YAML is one problem."""

    def __init__(self, project: Project, report: Report) -> None:
        self.root = project.root
        self.report = report
        self._nodes: dict[Path, yaml.Node | None] = {}

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def node(self, path: Path) -> yaml.Node | None:
        if path not in self._nodes:
            self._nodes[path] = None
            try:
                self._nodes[path] = yaml.compose(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                self.report.add(self.name(path), 1, "file not found")
            except UnicodeDecodeError:
                self.report.add(self.name(path), 1, "not UTF-8 text")
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                self.report.add(self.name(path), mark.line + 1 if mark else 1,
                                f"not valid YAML ({getattr(e, 'problem', None) or e})")
        return self._nodes[path]
