"""Evaluation: retrieval measured on labelled question sets (metrics) and on BEIR corpora (beir)."""
