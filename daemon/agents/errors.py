"""Classifying provider failures the same way for every agent kind.

The class decides what the loop does (see daemon/retry.py): `auth` stops the run, `quota` switches
to the fallback model or stops, `rate_limit` waits and retries, `transient`/`other` retry a few
times. Auth errors are never reported as quota, and quota never as a rate limit.
"""

from __future__ import annotations

import re

_QUOTA = re.compile(
    r"insufficient[_ ]quota|quota (?:exceeded|exhausted)|exceeded your current quota|"
    r"credit balance is too low|billing|usage limit|out of credits|payment required",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"invalid[_ ]api[_ ]key|incorrect api key|authentication|unauthori[sz]ed|invalid x-api-key|"
    r"not logged in|please run /login|permission[_ ]denied|forbidden|\b401\b|\b403\b",
    re.IGNORECASE,
)
_RATE = re.compile(r"rate[_ ]limit|too many requests|\b429\b|overloaded|\b529\b", re.IGNORECASE)
_TRANSIENT = re.compile(
    r"timed? ?out|timeout|connection (?:reset|refused|error)|temporarily unavailable|"
    r"internal server error|bad gateway|service unavailable|\b50[0234]\b|econnreset|stream",
    re.IGNORECASE,
)


def classify_http(status: int, body: str = "") -> str:
    if status in (401, 403):
        return "auth"
    if status == 402 or (status == 429 and _QUOTA.search(body)):
        return "quota"
    if status in (429, 529):
        return "rate_limit"
    if status >= 500 or status == 408:
        return "transient"
    return classify_message(body)


def classify_message(text: str) -> str:
    """The class of a CLI's or provider's error message, most specific first."""
    if _QUOTA.search(text):
        return "quota"
    if _AUTH.search(text):
        return "auth"
    if _RATE.search(text):
        return "rate_limit"
    if _TRANSIENT.search(text):
        return "transient"
    return "other"


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's seconds (HTTP dates are rare from model APIs and are ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None
