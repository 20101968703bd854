"""The HTTP layer: routes translate requests into service calls; no SQL lives here."""
