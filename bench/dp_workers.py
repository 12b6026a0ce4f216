"""Start ASC's data plane with ASC_DP_WORKERS > 1 for the benchmarks.

This is ``data_plane.__main__.main`` itself, imported rather than run as ``python -m
data_plane``: run that way, multiprocessing's spawn cannot find ``serve`` in the workers
(it does not re-import a package's ``__main__`` module in the child, so unpickling the
target fails with "Can't get attribute 'serve' on <module '__main__'>"). Imported from here,
the target is ``data_plane.__main__.serve`` by name and each worker imports it normally. Once
``python -m data_plane`` can start several workers, the benchmarks can use it directly.
"""

from __future__ import annotations

from data_plane.__main__ import main

if __name__ == "__main__":
    main()
