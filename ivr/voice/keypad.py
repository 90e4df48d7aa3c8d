"""Key menus for a caller whose language has no speech model here: ``keypad:`` in
``locales/<locale>.yml``.

Without a recogniser the caller cannot be heard, so a greeting that asks them to speak is
a dead end (two silences, then an agent). Instead they hear a key menu ("查询余额请按1 …
人工服务请按0") and each key stands for a request the dialogue already handles: a key
press becomes that intent, understood for sure. The menus are data, like ``expects:``
(which they mirror: after which prompt, which menu), and not model data: changing them
retrains nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import DataFileError, shown

KEYS = frozenset("0123456789*")  # "#" ends an entry: never a menu choice


@dataclass(frozen=True)
class KeyChoice:
    """What one key of a menu means: an intent, with entities when the choice carries a
    value (借记卡请按1: ``inform`` with ``card_type: 借记卡``)."""

    intent: str
    entities: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class KeyMenu:
    name: str  # also the prompt's name: prompts/<locale>/keypad_<name>.wav replaces it
    prompt: str
    keys: dict[str, KeyChoice]

    @property
    def prompt_name(self) -> str:
        return f"keypad_{self.name}"


@dataclass(frozen=True)
class Keypad:
    """A locale's key menus, which prompt each follows, and the keys-only wording of the
    prompts that tell the caller to speak."""

    menus: dict[str, KeyMenu]
    after: dict[str, str]  # response name -> menu name
    default: str  # the menu after any other prompt that waits for the caller
    instead: dict[str, str]  # response name -> what is said instead when keys are all

    def offer(self, prompts: Sequence[str], names: Sequence[str | None]
              ) -> tuple[list[str], list[str | None], KeyMenu]:
        """The prompts as a keys-only caller hears them, the menu's prompt last, and the
        menu the caller now chooses from. The last prompt that has a menu decides (as for
        grammars: "…身份验证成功。还有什么可以帮您？" is answered like its question)."""
        names = list(names) + [None] * (len(prompts) - len(names))
        said = [self.instead.get(name or "", text) for text, name in zip(prompts, names,
                                                                          strict=False)]
        menu = self.menus[next((self.after[n] for n in reversed(names) if n in self.after),
                               self.default)]
        return [*said, menu.prompt], [*names, menu.prompt_name], menu

    @classmethod
    def load(cls, data: Any, path: Path) -> Keypad | None:
        """The ``keypad:`` block of a locale file (None: the locale has no key menus)."""
        if data is None:
            return None
        try:
            menus = {str(name): KeyMenu(str(name), str(menu["prompt"]),
                                        {_key(k, path): _choice(v, path)
                                         for k, v in menu["keys"].items()})
                     for name, menu in data["menus"].items()}
            after = {str(k): str(v) for k, v in (data.get("after") or {}).items()}
            default = str(data["default"])
            instead = {str(k): str(v) for k, v in (data.get("instead") or {}).items()}
        except (KeyError, TypeError, AttributeError) as e:
            raise DataFileError(f"{shown(path)}: malformed keypad: block ({e!r})") from None
        for menu in [*after.values(), default]:
            if menu not in menus:
                raise DataFileError(f"{shown(path)}: keypad: menu {menu!r} is not under "
                                    "keypad: menus:")
        return cls(menus, after, default, instead)

    def intents(self) -> set[str]:
        """Every intent a key stands for (``ivr data validate`` checks them)."""
        return {c.intent for m in self.menus.values() for c in m.keys.values()}


def _key(key: Any, path: Path) -> str:
    key = str(key)
    if key not in KEYS:
        raise DataFileError(f"{shown(path)}: keypad: {key!r} is not a menu key (0-9 or *)")
    return key


def _choice(value: Any, path: Path) -> KeyChoice:
    """``check_balance``, or ``{intent: inform, card_type: 借记卡}``."""
    if isinstance(value, str):
        return KeyChoice(value)
    if isinstance(value, dict) and isinstance(value.get("intent"), str):
        return KeyChoice(value["intent"], tuple(
            (str(k), str(v)) for k, v in value.items() if k != "intent"))
    raise DataFileError(f"{shown(path)}: keypad: a key means an intent, or "
                        f"{{intent: ..., ENTITY: VALUE}} (got {value!r})")
