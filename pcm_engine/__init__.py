"""PCM Lab engine: GRPO and Probabilistic Chunk Masking for vision-language-action policies.

The engine knows nothing of HTTP, SQL or Celery: it trains, and reports through a MetricSink.
"""

__version__ = "0.1.0"
