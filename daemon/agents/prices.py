"""Cost from token counts, for CLIs that report tokens but not dollars.

USD per million tokens; `[agent.prices."MODEL"] input = …, output = …, cached_input = …` in
program.toml overrides or extends this table. An unknown model costs 0 and is said so in the log.
"""

from __future__ import annotations

from shared.schema import Price

DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(input=1.25, output=10.0, cached_input=0.125),
    "gpt-5-codex": Price(input=1.25, output=10.0, cached_input=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.0, cached_input=0.025),
    "gpt-5-nano": Price(input=0.05, output=0.4, cached_input=0.005),
    "gpt-4.1": Price(input=2.0, output=8.0, cached_input=0.5),
    "gpt-4.1-mini": Price(input=0.4, output=1.6, cached_input=0.1),
    "gpt-4o": Price(input=2.5, output=10.0, cached_input=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.6, cached_input=0.075),
    "o4-mini": Price(input=1.1, output=4.4, cached_input=0.275),
    "claude-sonnet-4-5": Price(input=3.0, output=15.0, cached_input=0.3),
    "claude-opus-4-1": Price(input=15.0, output=75.0, cached_input=1.5),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cached_input=0.1),
}


def price_for(model: str | None, overrides: dict[str, Price]) -> Price | None:
    if not model:
        return None
    table = {**DEFAULT_PRICES, **overrides}
    if model in table:
        return table[model]
    base = model.split("/")[-1]  # "openai/gpt-5" as OpenCode and OpenRouter spell it
    return table.get(base)


def cost_usd(
    model: str | None,
    overrides: dict[str, Price],
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
) -> float | None:
    """Dollars for this usage, or None when the model's price is unknown."""
    price = price_for(model, overrides)
    if price is None:
        return None
    cached = min(cached_input_tokens, input_tokens)
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    return (
        (input_tokens - cached) * price.input + cached * cached_rate + output_tokens * price.output
    ) / 1_000_000
