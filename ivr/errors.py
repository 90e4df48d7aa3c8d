"""Errors the engine reports to a user as one clear line (never a traceback)."""


class IvrError(Exception):
    """Base of every error the CLI prints as ``error: <message>`` and exits non-zero."""


class DataFileError(IvrError):
    """A trainer-maintained data file (YAML) is missing or malformed."""


class ScriptError(IvrError):
    """A simulated call script is malformed."""


class ModelNotFoundError(IvrError):
    """No trained model is where the engine looks for one."""


class DeliveryError(IvrError):
    """A handoff could not be delivered to the ACD webhook."""
