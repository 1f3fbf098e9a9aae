"""The aiohttp app: OpenAI-compatible API, WebSocket streaming, health and docs."""
