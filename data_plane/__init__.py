"""The ASC data plane: an aiohttp gateway that serves OpenAI-compatible requests from the
policy snapshot it holds in memory, and never calls the control plane on the request path."""

__version__ = "0.1.0"
