"""The way in: prepare an event (verify its signature, parse, key, filter) and store it once."""
