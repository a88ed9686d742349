"""The HTTP API: ``create_app(settings, config)`` builds it; nothing happens at import time."""
