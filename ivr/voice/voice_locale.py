"""How a locale sounds and listens on the phone: ``locales/<locale>.yml``.

The dialogue (domain.yml) says what the bot says; this file says which speech model hears
the caller, which voice speaks, how a caller picks the language, and which closed sets of
phrases (grammars) the recogniser listens for after which prompt.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import DataFileError, shown
from ivr.voice.keypad import Keypad
from ivr.yamlfile import read_mapping

AGENT_GRAMMAR = "agent"  # added to every grammar: an agent can be asked for in any state


@dataclass(frozen=True)
class VoiceLocale:
    locale: str
    asr_model: str | None  # a folder, or package:NAME; None: no model configured
    tts_voice: str
    language_key: str  # the DTMF key that picks this language at call start
    language_phrases: tuple[str, ...]  # what a caller says to pick it
    language_prompt: str  # "for <this language> press 2 or say ..." in this language
    notice: str  # said before the greeting and never interrupted (a legal notice)
    failure_prompt: str  # said when the dialogue layer fails, before an agent takes over
    busy_prompt: str  # said to a call the engine has no capacity for (or while draining)
    grammars: dict[str, tuple[str, ...]]
    expects: dict[str, tuple[str, ...]]  # response name -> grammars that answer it
    default_expects: tuple[str, ...]  # grammars after any other prompt; () = free-form
    play_through: frozenset[str]  # response names that barge-in must not cut
    keypad: Keypad | None = None  # key menus for a caller the locale cannot hear

    @classmethod
    def load(cls, path: Path) -> VoiceLocale:
        data: Any = read_mapping(path)
        locale = path.stem
        try:
            grammars = {name: tuple(str(p) for p in phrases)
                        for name, phrases in (data.get("grammars") or {}).items()}
            expects = {name: _names(g) for name, g in (data.get("expects") or {}).items()}
            default = _names(data.get("default_expects"))
            for name in [n for names in [*expects.values(), default] for n in names]:
                if name not in grammars:
                    raise DataFileError(
                        f"{shown(path)}: expects grammar {name!r}, which is not defined")
            choice = data["language_choice"]
            model = os.environ.get(f"IVR_ASR_MODEL_{locale.upper()}") or data["asr"].get("model")
            if model and not str(model).startswith("package:"):
                model = path.parent.parent / Path(str(model)).expanduser()  # from the root
            return cls(
                locale=locale,
                asr_model=str(model) if model else None,
                tts_voice=str(data["tts"]["voice"]),
                language_key=str(choice["key"]),
                language_phrases=tuple(str(p) for p in choice["phrases"]),
                language_prompt=str(choice["prompt"]),
                notice=str(data.get("notice") or ""),
                failure_prompt=str(data["failure_prompt"]),
                busy_prompt=str(data["busy_prompt"]),
                grammars=grammars,
                expects=expects,
                default_expects=default,
                play_through=frozenset(data.get("play_through") or ()),
                keypad=Keypad.load(data.get("keypad"), path),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise DataFileError(f"{shown(path)}: malformed voice settings ({e!r})") from None

    def phrases_after(self, prompt_names: Sequence[str | None]) -> list[str] | None:
        """What the caller may say after these prompts: a phrase list, or None (free-form).

        The last prompt that expects something decides ("...身份验证成功。还有什么可以帮您？"
        is answered like its question).
        """
        names = next((self.expects[n] for n in reversed(prompt_names) if n in self.expects),
                     self.default_expects)
        if not names:
            return None
        phrases = [p for name in [*names, AGENT_GRAMMAR] for p in self.grammars.get(name, ())]
        return list(dict.fromkeys(phrases))

    def all_phrases(self) -> list[str]:
        return [p for phrases in self.grammars.values() for p in phrases] + list(
            self.language_phrases)


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def load_voice_locales(folder: Path) -> dict[str, VoiceLocale]:
    """Every ``locales/*.yml``, by locale."""
    locales = {p.stem: VoiceLocale.load(p) for p in sorted(folder.glob("*.yml"))}
    if not locales:
        raise DataFileError(f"{shown(folder)}: no locale voice settings (*.yml)")
    return locales
