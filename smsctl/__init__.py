"""smsctl: send SMS through the Vonage Messages API and track every message to its final status."""

__version__ = "0.1.0"
