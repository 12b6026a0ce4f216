"""Benchmarks: `make bench` (or `python -m bench [name ...]`) runs them and prints tables.

| name | what | module |
|---|---|---|
| guardrails | guardrail scanning, us per KB of chat text | guardrails_bench |
| decision | the pure decision path, us per request | decision_bench |
| snapshot | 100k keys / 10k routes: size, compile, memory, stalls | snapshot_scale_bench |
| ingest | usage ingestion into PostgreSQL, events/s | ingest_bench |
| push | push-to-ACK latency to 10 data planes | push_bench |
| gateway | req/s and added latency: upstream, pass-through, ASC, LiteLLM | gateway_bench |

`make bench BENCH="push gateway"` runs some of them. Environment: DATABASE_URL (PostgreSQL for
the control planes started and for ingestion; else SQLite, and ingestion uses the machine's
PostgreSQL at 127.0.0.1:5432), ASC_BENCH_SECONDS (length of the gateway's throughput runs,
default 5; latency runs twice that), ASC_BENCH_PROFILE=1 (py-spy profiles of the data plane
under load). LiteLLM and py-spy are installed on first use under .bench/ (gitignored).

A benchmark module has `TITLE` and `run()`, returning a dict of figures or a
`bench.report.Report` (tables, notes, and figures checked against the targets of DESIGN.md and
issue 7, printed PASS/MISS); `bench.__main__.BENCHMARKS` lists them. Nothing here asserts a
timing: a MISS is reported, not failed.
"""
