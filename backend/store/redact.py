"""Credentials out of every message: a broker or database URL is shown as kombu masks it
(`redis://:**@host:6379/0`), and its password nowhere, whatever text it appears in (an error
answered to a caller, a run's stored error, a log line, a worker's exit reason)."""

from __future__ import annotations

from kombu.utils.url import maybe_sanitize_url, url_to_parts


def masked(url: str) -> str:
    """`url` with its password replaced by `**`."""
    return maybe_sanitize_url(url)


def redact(text: str, *urls: str) -> str:
    """`text` with each of `urls` masked, and each one's password masked wherever it appears
    alone (a driver may quote it in its own words)."""
    for url in urls:
        text = text.replace(url, masked(url))
        password = url_to_parts(url).password
        if password:
            text = text.replace(password, "**")
    return text
