"""Calling providers: `failover` tries a route's targets in order with retries and breakers;
`providers/` holds one adapter per provider wire format."""
