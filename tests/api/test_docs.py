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


def test_openapi_states_batch_bounds_items_and_every_error_status() -> None:
    """A client generated from /api/doc knows the 1..1000 bound, the item fields and the 404s/503."""
    from relayq.api.openapi import build_openapi

    build_routes()
    paths = build_openapi()["paths"]
    for path, key, required in (("/queue/ack/batch", "acks", ["id", "lock_token"]),
                                ("/queue/nack/batch", "nacks", ["id", "lock_token"])):
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"][key]
        assert (schema["minItems"], schema["maxItems"]) == (1, 1000)
        assert schema["items"]["required"] == required
    ids = paths["/queue/messages/delete"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert ids["properties"]["messageIds"]["items"] == {"type": "string"}
    assert "404" in paths["/queue/messages/batch"]["get"]["responses"]
    assert "404" in paths["/queues/{name}/purge"]["post"]["responses"]
    assert {"400", "404", "413"} <= set(paths["/queue/import"]["post"]["responses"])
    assert "503" in paths["/queue/message"]["post"]["responses"]
    for path in ("/doc", "/health", "/queue/events", "/queue/config"):  # never a 503
        assert "503" not in paths[path]["get"]["responses"], path


def test_links_between_docs_resolve() -> None:
    """Every relative link of README.md and docs/*.md names a file that exists (the docs cited an
    `API.md` a reader could not find; it is docs/contract.md now)."""
    import re

    root = DOCS.parent
    broken = []
    for page in [root / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#", 1)[0]
            if path and "://" not in path and not (page.parent / path).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken, broken
