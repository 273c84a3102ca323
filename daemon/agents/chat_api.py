"""One OpenAI-compatible chat-completions endpoint: requests, usage, and failures classified.

Every way a request can fail — an HTTP error status, a connection or read failure, a body that
is not the documented JSON — becomes a `ProviderError` with the class the retry policy acts on
(auth, quota, rate_limit, transient, other) and the provider's Retry-After, if any.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from daemon.agents.errors import classify_http, classify_message, retry_after_seconds
from daemon.agents.prices import cost_usd
from shared.schema import Price

REQUEST_TIMEOUT = httpx.Timeout(600.0, connect=15.0)
"""One request's limit (slow local models included); `[agent] timeout` bounds the whole run."""


class ProviderError(Exception):
    def __init__(self, message: str, error_class: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.retry_after = retry_after


@dataclass
class Spend:
    """Token usage and dollars of one experiment, summed over its requests."""

    input: int = 0
    output: int = 0
    cached: int = 0
    cost: float = 0.0
    unpriced: bool = False
    """Some request was made with a model the price table does not know (counted as $0)."""

    @property
    def tokens(self) -> int:
        return self.input + self.output

    def add(self, usage: Any, model: str, prices: dict[str, Price]) -> None:
        """Count a response's `usage` (prompt, completion and cached prompt tokens)."""
        if not isinstance(usage, Mapping):
            return
        details = usage.get("prompt_tokens_details")
        tokens_in = _count(usage.get("prompt_tokens"))
        tokens_out = _count(usage.get("completion_tokens"))
        cached = _count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
        self.input += tokens_in
        self.output += tokens_out
        self.cached += cached
        cost = cost_usd(
            model,
            prices,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cached_input_tokens=cached,
        )
        self.unpriced = self.unpriced or cost is None
        self.cost += cost or 0.0


@dataclass
class ChatAPI:
    client: httpx.AsyncClient
    """With `base_url` and the authorization header set; the key lives nowhere else."""
    key_env: str | None

    @property
    def url(self) -> str:
        return f"{str(self.client.base_url).rstrip('/')}/chat/completions"

    async def complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        options: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Any]:
        """The assistant message of one (non-streamed) completion, and the response's usage.

        `options` are further request fields (`temperature`, `reasoning_effort`), sent as given.
        """
        body = {"model": model, "messages": messages, "tools": tools, "tool_choice": "auto"}
        body.update(options or {})
        try:
            response = await self.client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            raise ProviderError(f"request to {self.url} timed out", "transient") from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"request to {self.url} failed: {exc}", "transient") from None
        if response.status_code >= 400:
            raise self._http_error(response, model)
        try:
            data = response.json()
        except ValueError:
            snippet = response.text[:200]
            raise ProviderError(
                f"malformed response from {self.url}: {snippet!r}", "transient"
            ) from None
        if isinstance(data, Mapping) and "error" in data and "choices" not in data:
            detail = error_detail(json.dumps(data))
            raise ProviderError(f"error from {self.url}: {detail}", classify_message(detail))
        choices = data.get("choices") if isinstance(data, Mapping) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, Mapping) else None
        if not isinstance(message, Mapping):
            raise ProviderError(
                f"no message in the response from {self.url}: {data!r:.200}", "other"
            )
        return dict(message), data.get("usage")

    def _http_error(self, response: httpx.Response, model: str) -> ProviderError:
        status, text = response.status_code, response.text
        error_class = classify_http(status, text)
        detail = error_detail(text) or response.reason_phrase
        message = f"HTTP {status} from {self.url} (model {model}): {detail}"
        if error_class == "auth":
            where = f"${self.key_env}" if self.key_env else "[agent] api_key_env"
            message += f" — check the API key in {where}"
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        millis = retry_after_seconds(response.headers.get("retry-after-ms"))
        if retry_after is None and millis is not None:
            retry_after = millis / 1000
        return ProviderError(message, error_class, retry_after)


def error_detail(text: str) -> str:
    """The provider's own error message from an `{"error": {"message": …}}` body, or the body."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        parts = [str(error.get("message") or ""), str(error.get("code") or error.get("type") or "")]
        return " ".join(p for p in parts if p)[:300] or text[:300]
    return str(error or text)[:300]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0
