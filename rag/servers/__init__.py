"""Servers over the library: `rag serve` (an OpenAI-compatible HTTP API and a web chat: http, web/)
and `rag mcp` (tools for agents: mcp), sharing one request and JSON vocabulary (wire)."""
