"""The call log: the events of every call (ivr/core/events.py) written as they happen
(``CallRecorder``, one writer thread) to the ``CallStore`` on SQLite or PostgreSQL, with
the recordings; read back by ``ivr calls``, the console, replay and the trainers' tools."""
