"""The tokenizer shipped with the data plane: it counts as OpenAI's o200k_base does, loads from
the repository's file without fetching anything, and gives way to the characters/4 estimate
when its file is missing or altered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from data_plane.dialects import anthropic as anthropic_api
from data_plane.tokens import encoding


def test_the_shipped_tokenizer_counts_as_o200k_base_does() -> None:
    count = encoding.load()
    assert count is not None
    assert encoding.loaded() is count
    # Counts of o200k_base (GPT-4o's tokenizer), not of characters/4.
    assert count("Hello, world!") == 4
    assert count("Say hello to the gateway") == 5
    assert count("Wie geht es dir? 日本語のテキスト") == 11


def test_a_count_estimate_uses_it_with_framing_per_message() -> None:
    body = {
        "model": "gpt",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello to the gateway"}],
    }
    count = encoding.load()
    # "Be brief." is 3 tokens, the message 5, and 3 of framing for the one message.
    assert anthropic_api.estimate_count(body, count) == {"input_tokens": 11}
    assert anthropic_api.estimate_count(body) == {"input_tokens": 3 + 6 + 3}, "characters/4"


def test_it_loads_from_the_repository_without_fetching_anything(tmp_path: Path) -> None:
    # A fresh process whose tiktoken fails on any fetch, with an empty cache folder of its own
    # set: the shipped file is used all the same, and the environment is left as it was.
    script = """
import os, tiktoken.load
def refuse(path):
    raise AssertionError(f"fetched {path}")
tiktoken.load.read_file = refuse
from data_plane.tokens import encoding
count = encoding.load()
print(count("Hello, world!"), os.environ["TIKTOKEN_CACHE_DIR"])
"""
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", str(tmp_path)]
    assert list(tmp_path.iterdir()) == [], "nothing was written to the caller's cache"


def test_a_missing_or_altered_vocabulary_gives_no_tokenizer(tmp_path: Path) -> None:
    missing = tmp_path / encoding.CACHE_ENTRY
    assert encoding._load(missing) is None
    altered = (encoding.FOLDER / encoding.CACHE_ENTRY).read_bytes().replace(b"IQ== 0", b"IQ== 1")
    missing.write_bytes(altered)
    assert encoding._load(missing) is None
