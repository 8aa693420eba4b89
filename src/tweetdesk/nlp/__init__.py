"""Text stages: cleaning (clean.py) and named entities (entities.py)."""
