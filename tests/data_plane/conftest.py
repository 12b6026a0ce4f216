"""Every async data-plane test fails on a blocking call inside the event loop."""

from tests.data_plane.blocking import blocking_calls  # noqa: F401  # the autouse fixture
