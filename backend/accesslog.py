"""Access logs never hold a secret.

Long-lived tokens never travel in a URL (backend/deps.py), but two secrets still do, by design: a
ticket (`?ticket=`, single-use and seconds-long, so worthless once logged — still, a log is no
place for it) and a share link's token, which is the page's address (`/share/<token>`, a sweep's
`/share/sweeps/<token>`, and the `/api/share/...` lookup its page makes). This filter masks both
in uvicorn's access log, plus an `access_token=` that an old client may still send (the server
ignores it).
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
MASK = "[redacted]"
_SECRET_PARAM = re.compile(r"([?&](?:ticket|access_token)=)[^&\s]*")
_SHARE_TOKEN = re.compile(r"(/share/(?:sweeps/)?)[^/?#\s]+")  # a run's link, or a sweep's


def redact(text: str) -> str:
    return _SHARE_TOKEN.sub(rf"\g<1>{MASK}", _SECRET_PARAM.sub(rf"\g<1>{MASK}", text))


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's string arguments (uvicorn logs the path as one of them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install() -> None:
    """Idempotent: every app made in this process shares the one access logger."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
        logger.addFilter(RedactSecrets())
