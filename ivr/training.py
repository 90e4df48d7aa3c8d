"""`ivr train`: train a locale's Rasa model, only when its inputs changed."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr.errors import DataFileError, IvrError
from ivr.nlu.normalizer import Normalizer
from ivr.project import Project
from ivr.yamlfile import read_mapping


@dataclass(frozen=True)
class TrainResult:
    model: Path
    trained: bool  # False when an up-to-date model already existed


def up_to_date(project: Project) -> bool:
    """A model of the locale's current inputs exists."""
    return project.model_for(project.fingerprint()).is_file()


def train(project: Project, force: bool = False) -> TrainResult:
    fingerprint = project.fingerprint()
    target = project.model_for(fingerprint)
    if target.is_file() and not force:
        return TrainResult(target, trained=False)
    check_inputs(project)

    from ivr.dialogue.engine import quiet_ml_logging

    quiet_ml_logging()
    os.environ.setdefault("RASA_CACHE_DIRECTORY", str(project.root / ".rasa" / "cache"))
    from rasa.model_training import train as rasa_train

    project.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = _resolved_config(project, Path(tmp))
        result = rasa_train(
            domain=str(project.domain),
            config=str(config),
            training_files=[str(project.rules), *map(str, project.nlu_files())],
            output=str(project.models_dir),
            fixed_model_name=target.name.removesuffix(".tar.gz"),
            force_training=force,
        )
    if result.code != 0 or not target.is_file():
        raise IvrError(f"training failed (rasa exit code {result.code})")
    return TrainResult(target, trained=True)


def check_inputs(project: Project) -> None:
    """Fail with one clear line on a broken data file, before Rasa's long start-up."""
    for path in [project.domain, project.config, project.rules, *project.nlu_files()]:
        read_mapping(path)
    for component in _normalizers(read_mapping(project.config)):  # none in some locales
        try:
            paths = [project.root / component[key] for key in ("dialects", "lexicon")]
        except (KeyError, TypeError):
            raise DataFileError(
                f"{project.config}: DialectNormalizer needs 'dialects' and 'lexicon' files"
            ) from None
        Normalizer.from_files(*paths)


def _normalizers(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The DialectNormalizer components of a pipeline (zh has one, ko none)."""
    return [c for c in config.get("pipeline") or []
            if isinstance(c, dict) and str(c.get("name", "")).endswith("DialectNormalizer")]


def _resolved_config(project: Project, folder: Path) -> Path:
    """The locale's config with the normaliser's data paths made absolute and fingerprinted.

    The fingerprint stops Rasa's training cache from reusing a normaliser built from older
    dialect or lexicon data (Rasa itself only sees the file paths).
    """
    config = read_mapping(project.config)
    for component in _normalizers(config):
        digest = hashlib.sha256()
        for key in ("dialects", "lexicon"):
            path = project.root / component[key]
            component[key] = str(path)
            digest.update(path.read_bytes())
        component["data_fingerprint"] = digest.hexdigest()[:12]
    resolved = folder / "config.yml"
    resolved.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return resolved
