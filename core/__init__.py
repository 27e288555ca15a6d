"""Plain types and errors shared by every package (``indexes``, ``retriever``, ``service``, ``eval``).

It imports nothing of the project, so any package may depend on it without creating a cycle.
"""
