"""Request cost from the model catalog's prices, in exact integers.

Prices are micro-USD per million tokens; costs are nano-USD. One token at 1 micro-USD per
million tokens costs 1e-12 USD = 1e-3 nano-USD, so a cost is the sum of tokens x price
divided by 1000 (rounded half up once, at the end, so sums of requests stay exact to the
nano-dollar at the request level).
"""

from __future__ import annotations


def cost_nano_usd(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cached_prompt_tokens: int,
    input_price: int,
    output_price: int,
    cached_input_price: int,
) -> int:
    """Cost of one request. ``cached_prompt_tokens`` is the part of ``prompt_tokens`` that
    the provider served from its cache; it is billed at ``cached_input_price`` when that is
    set, otherwise at the normal input price."""
    cached = min(cached_prompt_tokens, prompt_tokens) if cached_input_price else 0
    pico_usd = (
        (prompt_tokens - cached) * input_price
        + cached * cached_input_price
        + completion_tokens * output_price
    )
    return (pico_usd + 500) // 1000
