"""Rasa's custom-action endpoint, answered in this process by rasa_sdk's executor.

Rasa normally calls custom actions over HTTP on a second server. This endpoint takes the
same request and runs it here, so the embedded default needs no second process, while
configuring a real action server instead still works unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from rasa.utils.endpoints import ClientResponseError, EndpointConfig
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from ivr.dialogue.actions import build_actions
from ivr.dialogue.bank import BankAdapter
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.lockout import Lockout


class InProcessActionEndpoint(EndpointConfig):
    def __init__(self, bank: BankAdapter, kb: KnowledgeBase,
                 lockout: Lockout | None = None) -> None:
        super().__init__(url="in-process://actions")
        self._executor = ActionExecutor()
        self._actions = build_actions(bank, kb, lockout)
        for action in self._actions:
            self._executor.register_action(action)

    @property
    def lockout(self) -> Lockout:
        return self._actions[0].lockout

    @lockout.setter
    def lockout(self, lockout: Lockout) -> None:
        """Count verification failures somewhere else from now on (the server's call log,
        opened after the engines load)."""
        for action in self._actions:
            action.lockout = lockout

    async def request(
        self,
        method: str = "post",
        subpath: str | None = None,
        content_type: str | None = "application/json",
        compress: bool = False,
        **kwargs: Any,
    ) -> Any:
        try:
            return await self._executor.run(kwargs["json"])
        except ActionExecutionRejection as e:  # answered as an action server would
            body = json.dumps({"action_name": e.action_name, "error": e.message})
            raise ClientResponseError(400, "action rejected", body) from e
        except ActionNotFoundException as e:
            raise RuntimeError(f"no custom action named {e.action_name!r}") from e
