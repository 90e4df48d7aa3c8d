"""The voice path: telephony transports, speech recognition, prompt audio, call sessions."""
