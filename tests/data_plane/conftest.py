"""Every async data-plane test fails on a blocking call inside the event loop; the fake
upstream the budget tests share."""

from tests.data_plane.blocking import blocking_calls  # noqa: F401  # the autouse fixture
from tests.data_plane.budgets import upstream  # noqa: F401  # the budget tests' upstream
