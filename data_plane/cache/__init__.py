"""The exact-match response cache (docs/cache.md): the key (``key``), what an entry holds
(``entry``), where entries live (``backends``: in process, or Redis shared by every data
plane) and the cache the request path asks (``cache.ResponseCache``)."""
