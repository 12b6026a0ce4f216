"""The snapshot path: `client` receives snapshots over gRPC and ACKs or NACKs them; `store`
compiles, swaps and keeps the last good one on disk."""
