"""`relay bench`: the benchmark runner, its scenarios, the raw-SQL limit and the DB-latency proxy.

The benchmark drives a real server over HTTP (or the service layer in-process), counts database
round trips with the server's own counter, and measures in the same run what plain SQL through
asyncpg achieves with the same concurrency, so every figure can be read as a fraction of the
machine's limit rather than as an absolute number on a noisy, shared machine.
"""
