"""Counting tokens with a tokenizer shipped with the gateway, never downloaded.

The vocabulary is OpenAI's ``o200k_base`` (``README.md`` beside this file says where it comes
from), loaded with ``tiktoken`` from this folder: ``tiktoken`` reads its cache folder
(``TIKTOKEN_CACHE_DIR``) before it would fetch anything, and the file here is named as its cache
entry and checked against the hash ``tiktoken`` expects, so the fetch never happens. Loading
takes about a second and ~80 MB of memory, on the first estimate only: ``load`` is called off
the event loop, once per process.

Counts from it are estimates for any model that is not of that family (Claude, Gemini,
Mistral tokenize differently), and callers say so.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import tiktoken

NAME = "o200k_base"
# The name tiktoken gives this encoding's file in its cache folder, and the file's SHA-256.
CACHE_ENTRY = "fb374d419588a4632f3f557e76b4b70aebbca790"
SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
FOLDER = Path(__file__).resolve().parent

Count = Callable[[str], int]

log = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded: list[Count | None] = []


def load() -> Count | None:
    """The shipped tokenizer as a counter (tokens in a text), loaded on the first call (slow:
    call it in a thread); None when its file is missing or altered (counts fall back to an
    estimate by characters)."""
    with _lock:
        if not _loaded:
            _loaded.append(_load(FOLDER / CACHE_ENTRY))
        return _loaded[0]


def loaded() -> Count | None:
    """The counter if ``load`` has already loaded it, without waiting for it."""
    return _loaded[0] if _loaded else None


def _load(path: Path) -> Count | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("the %s vocabulary is missing (%s): token counts are estimated", NAME, exc)
        return None
    if hashlib.sha256(data).hexdigest() != SHA256:
        log.warning("the %s vocabulary at %s is altered: token counts are estimated", NAME, path)
        return None
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path.parent)
    try:
        encoding = tiktoken.get_encoding(NAME)
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous

    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    return count
