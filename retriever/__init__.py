"""Multi-expert dense retrieval: domain experts, per-encoder FAISS indexes, a pilot-embedding router."""

from importlib.metadata import version

__version__ = version("router-retriever")
