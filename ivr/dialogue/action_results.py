"""Rasa's check of custom-action results, with its JSON schema compiled once.

Rasa 3.6 (``RemoteAction._validate_action_result``) calls ``jsonschema.validate`` on every
custom action's result. That function first checks the *schema* against the JSON-schema
metaschema and builds a new validator, every time: about 20 ms of CPU per action on the
dialogue thread, which every call's turns share (issue 17; docs/capacity.md). The schema
never changes (``RemoteAction.action_response_format_spec``), so it is checked once and
its validator kept; each result is still validated, in full, with the same error Rasa
raises. Nothing about what is accepted changes: only the repeated metaschema check goes.
"""

from __future__ import annotations

import threading
from typing import Any

_validator: Any = None  # the compiled validator, built on first use
_building = threading.Lock()  # engines run on dialogue threads of their own
_installed = False


def result_validator() -> Any:
    """The validator for Rasa's action-result schema: the schema checked once, here."""
    global _validator
    with _building:
        if _validator is None:
            from jsonschema import validators
            from rasa.core.actions.action import RemoteAction

            schema = RemoteAction.action_response_format_spec()
            cls = validators.validator_for(schema)
            cls.check_schema(schema)  # what jsonschema.validate did on every call
            _validator = cls(schema)
        return _validator


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with the compiled validator: the same
    error (Rasa's ``ValidationError`` and its message) for a malformed result."""
    from jsonschema import ValidationError
    from rasa.shared.constants import DOCS_BASE_URL

    try:
        result_validator().validate(result)
        return True
    except ValidationError as e:
        e.message += (
            ". Failed to validate Action server response from API, make sure your "
            "response from the Action endpoint is valid. For more information about the "
            f"format visit {DOCS_BASE_URL}/custom-actions")
        raise e


def validate_results_with_compiled_schema() -> None:
    """Make Rasa's remote actions validate with the compiled schema (idempotent)."""
    global _installed
    from rasa.core.actions.action import RemoteAction

    with _building:
        if not _installed:
            RemoteAction._validate_action_result = validate_action_result  # type: ignore
            _installed = True
