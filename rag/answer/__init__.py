"""Answering: passages to an answer a user can check. The LLM client (llm), prompts and the answer
stream (generate), answers without an LLM (extractive), and the citation check (citations)."""
