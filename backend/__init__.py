"""PCM Lab's web service: REST + SSE over the run database (see docs/architecture.md)."""
