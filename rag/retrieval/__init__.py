"""Retrieval: a question to ranked passages. Dense and keyword legs fused (search), the calibrated
"not covered" cut-off (relevance), and the optional cross-encoder second stage (rerank)."""
