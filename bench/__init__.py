"""Benchmarks: `python -m bench [name ...]` (or `make bench`) runs them and prints a table.

Each benchmark is a module with `run() -> dict[str, float]` (its measurements, named with their
unit) and a title; `bench.__main__.BENCHMARKS` lists them. Nothing here asserts a timing.
"""
