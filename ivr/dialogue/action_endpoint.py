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

from ivr.bank import BankAdapter
from ivr.dialogue.actions import build_actions
from ivr.knowledge import KnowledgeBase


class InProcessActionEndpoint(EndpointConfig):
    def __init__(self, bank: BankAdapter, kb: KnowledgeBase) -> None:
        super().__init__(url="in-process://actions")
        self._executor = ActionExecutor()
        for action in build_actions(bank, kb):
            self._executor.register_action(action)

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
