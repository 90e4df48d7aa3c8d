"""``ivr serve``: one aiohttp process with everything in it.

Routes: ``/twilio`` (Twilio Media Streams), ``/ws`` (the plain WebSocket),
``POST /audiosocket/calls`` (register an Asterisk call's caller), the telephony's next
step once the engine is done (``/twilio/voice``, ``/twilio/after-stream``,
``/audiosocket/result``: ivr/telephony/transfer.py), ``/health``,
``/metrics``, ``POST /admin/models/reload`` (swap in the promoted model); Asterisk
AudioSocket on its own TCP port. The dialogue models, speech models and TTS load once, with
the app (``cleanup_ctx``), and are shared by every call.

``settings.py``: what the server is told (arguments, environment); ``app.py``: the app
and what it loads; ``routes.py``: its HTTP routes; ``state.py``: what the app holds;
``run.py``: listening, and draining on a signal. Speech models load in
``ivr/dialogue/engine_factory.py``, as for the commands that decode offline.
"""
