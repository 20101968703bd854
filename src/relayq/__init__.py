"""Relay Queue: a language-agnostic message broker on PostgreSQL."""

__version__ = "0.1.0"
