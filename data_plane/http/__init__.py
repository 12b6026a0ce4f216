"""The HTTP edge of the request path: routes (`handlers`), the one request pipeline every
endpoint runs (`pipeline`), and the typed application keys that hold shared state (`appkeys`)."""
