"""Token usage estimates (protocol chat.md §4.7, V2/V3 estimator).

Grok reports no token counts, so usage is estimated:
``estimate(text) = max(1, ceil(utf8_bytes / 4), ceil(0.75 × word-or-punctuation segments))``
for non-empty text (0 for empty); prompt = estimate(flattened prompt) + 4;
completion = estimate(answer) + estimate(reasoning).
"""

from __future__ import annotations

import math
import re
from typing import Any

_SEGMENT = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    n_bytes = len(text.encode("utf-8"))
    n_seg = len(_SEGMENT.findall(text))
    return max(1, math.ceil(n_bytes / 4), math.ceil(0.75 * n_seg))


def build_usage(prompt_text: str, content: str, reasoning: str = "", *, prompt_tokens: int | None = None
                ) -> dict[str, Any]:
    """An OpenAI ``usage`` object with the estimated counts and full detail objects."""
    p = prompt_tokens if prompt_tokens is not None else estimate_tokens(prompt_text) + 4
    c_text = estimate_tokens(content)
    c_reason = estimate_tokens(reasoning)
    c = c_text + c_reason
    return {
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "prompt_tokens_details": {"cached_tokens": 0, "text_tokens": p, "audio_tokens": 0, "image_tokens": 0},
        "completion_tokens_details": {"text_tokens": c_text, "audio_tokens": 0, "reasoning_tokens": c_reason},
    }
