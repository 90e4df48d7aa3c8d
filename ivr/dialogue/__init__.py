"""Understanding and the call flows: one call (``call.py``) over the Rasa engine
(``engine.py``, its custom actions and NLU), with the bank adapter, knowledge and routing
it needs, built in one place (``engine_factory.py``)."""
