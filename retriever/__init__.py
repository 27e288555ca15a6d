"""Multi-expert dense retrieval: domain experts, per-encoder FAISS indexes, a pilot-embedding router."""

__version__ = "0.1.0"
