"""Use cases: load facts, call the engine once, persist in one unit of work."""
