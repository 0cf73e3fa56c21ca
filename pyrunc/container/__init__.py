"""Containers and their lifecycle: the state store and the create/start/kill/delete operations."""
