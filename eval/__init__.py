"""Evaluation: BEIR data through ir-datasets (offline), ir-measures metrics and a Pyserini BM25 baseline."""
