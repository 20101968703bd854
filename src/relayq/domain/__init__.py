"""Domain: error codes, ids and the wire shapes of messages and queues. No I/O here."""
