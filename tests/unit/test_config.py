"""Settings refuse values that would only fail later (with a traceback, or by deleting data)."""

from __future__ import annotations

import pytest

from relayq.config import ConfigError, Settings


def settings(**env: str) -> Settings:
    return Settings.from_env(environ=env, dotenv=None)


def test_defaults_are_valid() -> None:
    assert settings().activity_log_retention_hours == 168


@pytest.mark.parametrize("env,named", [
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ({"ACTIVITY_LOG_RETENTION_HOURS": "-1"}, "ACTIVITY_LOG_RETENTION_HOURS"),
    ({"ACKNOWLEDGED_RETENTION_HOURS": "-0.5"}, "ACKNOWLEDGED_RETENTION_HOURS"),
    ({"ACK_TIMEOUT_SECONDS": "0"}, "ACK_TIMEOUT_SECONDS"),
    ({"PORT": "abc"}, "PORT"),
    ({"EVENT_KEYLESS_STREAMS_MAX": "-1"}, "EVENT_KEYLESS_STREAMS_MAX"),
])
def test_unusable_values_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        settings(**env)


def test_levels_any_case_and_fractional_retention_are_accepted() -> None:
    configured = settings(LOG_LEVEL="WARNING", ACTIVITY_LOG_RETENTION_HOURS="0.5")
    assert configured.activity_log_retention_hours == 0.5
    assert settings(ACTIVITY_LOG_RETENTION_HOURS="0").activity_log_retention_hours == 0  # 0 keeps for ever
    assert settings(EVENT_KEYLESS_STREAMS_MAX="0").event_keyless_streams_max == 0  # no stream without the key
