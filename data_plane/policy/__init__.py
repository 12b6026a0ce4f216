"""The compiled snapshot and the pure decisions made from it: `compiled` (snapshot to lookup
tables), `auth` and `oidc` (who is calling), `routing` (target order) and `health` (breakers).
No I/O, no clock reads: time is passed in."""
