"""Cloud streaming speech services, sans-I/O.

One protocol class per service turns the audio of one telephony track into the messages to send,
and the service's messages into the typed results of `results.py`. The websocket loop that
carries them lives elsewhere, so every rule here is tested without a network.
"""
