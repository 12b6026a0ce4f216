"""Budgets and rate limits: the pure rules (`rules`, `leases`) and the parts that talk to the
control plane for leases (`admission`, `client`)."""
