"""Where a locale's data, configuration and models live in a project checkout."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ivr.errors import DataFileError, ModelNotFoundError, shown

# Normaliser data sits beside the NLU examples (trainers edit both) but is not Rasa data.
NORMALIZER_FILES = ("dialects.yml", "lexicon.yml")


def find_root(start: Path | None = None) -> Path:
    """The project root: $IVR_HOME, else the nearest folder up with domain.yml and nlu_data/."""
    if os.environ.get("IVR_HOME"):
        return Path(os.environ["IVR_HOME"]).resolve()
    for folder in [(start or Path.cwd()).resolve(), *(start or Path.cwd()).resolve().parents]:
        if (folder / "domain.yml").is_file() and (folder / "nlu_data").is_dir():
            return folder
    return Path(__file__).resolve().parent.parent  # a source checkout


@dataclass(frozen=True)
class Project:
    root: Path
    locale: str = "zh"

    @classmethod
    def discover(cls, locale: str = "zh") -> Project:
        return cls(find_root(), locale)

    @property
    def domain(self) -> Path:
        return self.root / "domain.yml"

    @property
    def config(self) -> Path:
        return self.root / "config" / f"{self.locale}.yml"

    @property
    def rules(self) -> Path:
        return self.root / "dialogue" / "rules.yml"

    @property
    def nlu_dir(self) -> Path:
        return self.root / "nlu_data" / self.locale

    @property
    def heldout(self) -> Path:
        return self.root / "nlu_data" / "heldout" / f"{self.locale}.yml"

    @property
    def heldout_calls(self) -> Path:
        """``nlu_data/heldout/calls/<locale>/``: whole held-out calls, each with what it
        should come to (``ivr evaluate`` plays them)."""
        return self.root / "nlu_data" / "heldout" / "calls" / self.locale

    @property
    def labelled(self) -> Path:
        """Utterances trainers labelled from calls (trained on, and scored by `evaluate`)."""
        return self.nlu_dir / "labelled.yml"

    @property
    def knowledge(self) -> Path:
        return self.root / "knowledge" / f"{self.locale}.yml"

    @property
    def locale_file(self) -> Path:
        """``locales/<locale>.yml``: how the locale sounds, listens and is understood."""
        return self.root / "locales" / f"{self.locale}.yml"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def nlu_files(self) -> list[Path]:
        return sorted(p for p in self.nlu_dir.glob("*.yml") if p.name not in NORMALIZER_FILES)

    def normalizer_files(self) -> list[Path]:
        """The normaliser's data files this locale has (none for a locale without one)."""
        return [self.nlu_dir / name for name in NORMALIZER_FILES
                if (self.nlu_dir / name).is_file()]

    def locales(self) -> list[str]:
        """Every dialogue locale of the project: those with a config/<locale>.yml."""
        return sorted(p.stem for p in (self.root / "config").glob("*.yml"))

    def with_locale(self, locale: str) -> Project:
        return Project(self.root, locale)

    def fingerprint(self) -> str:
        """Hash of everything a model is trained from, the normaliser's code included."""
        code = Path(__file__).parent / "nlu"
        inputs = [self.domain, self.config, self.rules, *self.nlu_files(),
                  *self.normalizer_files(), *sorted(code.glob("*.py"))]
        digest = hashlib.sha256()
        for path in inputs:
            digest.update(path.name.encode())
            digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        return digest.hexdigest()[:12]

    def model_for(self, fingerprint: str) -> Path:
        return self.models_dir / f"{self.locale}-{fingerprint}.tar.gz"

    @property
    def live_pointer(self) -> Path:
        """``models/live.yml``: the model in service for each locale ({zh: zh-....tar.gz})."""
        return self.models_dir / "live.yml"

    @property
    def promotions_log(self) -> Path:
        """``models/promotions.log``: one JSON line per promotion, every locale's."""
        return self.models_dir / "promotions.log"

    def live_model(self) -> Path:
        """The model in service: the pointer's for this locale. Without an entry there, the
        newest model ``ivr promote`` logged that still exists; never merely the newest
        trained, which is a candidate until it passes the gate. ``ivr train`` makes the
        pointer for a locale's first model (a fresh install). A pointer to a missing file is
        an error, not a silent switch to an unvetted model."""
        name = read_live_pointer(self.live_pointer).get(self.locale)
        if not name:
            promoted = self._last_promoted()
            if promoted is None:
                raise ModelNotFoundError(
                    f"no live {self.locale} model: `ivr train` makes its first model live, "
                    f"`ivr promote MODEL` another")
            return promoted
        if not (self.models_dir / name).is_file():
            raise ModelNotFoundError(
                f"{shown(self.live_pointer)} names {name} for {self.locale}, which is not in "
                f"{shown(self.models_dir)}: `ivr promote` another model")
        return self.models_dir / name

    def _last_promoted(self) -> Path | None:
        """The newest model of this locale that promotions.log records and that exists."""
        if not self.promotions_log.is_file():
            return None
        for line in reversed(self.promotions_log.read_text(encoding="utf-8").splitlines()):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn or hand-edited line says nothing
            if not isinstance(entry, dict):
                continue
            name = str(entry.get("model"))
            # a bare file name in models/, as promote writes it: never a path to follow
            if (entry.get("locale") == self.locale and name == Path(name).name
                    and name.startswith(f"{self.locale}-")
                    and (self.models_dir / name).is_file()):
                return self.models_dir / name
        return None

    def models(self) -> list[Path]:
        """This locale's trained models in ``models/``, newest first (the one listing of
        them: replay and ``latest_model`` read it)."""
        return sorted(self.models_dir.glob(f"{self.locale}-*.tar.gz"),
                      key=lambda p: p.stat().st_mtime, reverse=True)

    def latest_model(self) -> Path:
        """The newest trained model of this locale (a promotion candidate)."""
        models = self.models()
        if not models:
            raise ModelNotFoundError(
                f"no {self.locale} model in {self.models_dir}: run `ivr train` first"
            )
        return models[0]


def read_live_pointer(path: Path) -> dict[str, str]:
    """The live pointer's ``{locale: model file name}``; empty when there is none."""
    from ivr.yamlfile import read_yaml

    data = read_yaml(path) if path.is_file() else None
    if data is not None and not isinstance(data, dict):
        raise DataFileError(f"{shown(path)}: expected a mapping like {{zh: zh-....tar.gz}}")
    return {str(k): str(v) for k, v in (data or {}).items() if v}
