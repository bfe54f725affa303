"""The HTTP API: durable event store, scoped API keys, rate limits, metrics and routes."""
