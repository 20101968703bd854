"""Documentation cannot drift from the code: the API reference is generated, settings are listed."""

from __future__ import annotations

from pathlib import Path

from relayq.api.app import build_routes
from relayq.api.docgen import render
from relayq.config import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_api_reference_is_current() -> None:
    build_routes()
    assert (DOCS / "api.md").read_text() == render(), "run: python -m relayq.api.docgen > docs/api.md"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [name for name, _, _ in Settings().documented() if f"`{name}`" not in text]
    assert not missing, f"undocumented settings: {missing}"
