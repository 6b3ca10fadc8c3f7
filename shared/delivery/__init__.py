"""The sender workers' scheduler (scheduler.py) and the storage it talks to (store.py, postgres_store.py)."""
