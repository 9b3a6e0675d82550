"""Config loading: defaults, TOML, environment, flags; unknown keys named."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_config
from node.errors import ConfigError


def test_defaults() -> None:
    config = load_config(None, environ={})
    assert (config.http.host, config.http.port, config.media.frame_ms) == ("127.0.0.1", 8080, 10)
    assert config.media.ice_servers == ()
    # The admission limits come from bench/capacity.py (bench/RESULTS.md), per frame size.
    assert [config.participant_limit(ms) for ms in (5, 10, 20)] == [8, 16, 32]


def test_precedence_toml_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text('data_dir = "x"\n[http]\nport = 9000\nhost = "0.0.0.0"\n')
    config = load_config(
        toml, {"http": {"host": "127.0.0.2"}}, environ={"JAMNET_HTTP__PORT": "9100"}
    )
    assert (config.data_dir, config.http.port, config.http.host) == ("x", 9100, "127.0.0.2")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"http": {"prot": 1}}, "unknown config key http.prot"),
        ({"bogus": 1}, "unknown config key bogus"),
        ({"http": {"port": "eighty"}}, "http.port must be an integer"),
        ({"http": {"port": 70000}}, "http.port must be 0-65535"),
        ({"http": {"tls": "files"}}, "cert_file"),
        ({"media": {"frame_ms": 7}}, "media.frame_ms must be 5, 10 or 20"),
        ({"media": {"opus_application": "voip"}}, "opus_application"),
        ({"session": {"max_participants_5ms": 0}}, "max_participants_5ms must be 1-256"),
        ({"session": {"media_timeout_s": 0}}, "media_timeout_s"),
        ({"session": {"challenge_ttl_s": "nan"}}, "finite"),
    ],
)
def test_bad_values_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, values, environ={})


def test_env_unknown_key_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown config key media.tick"):
        load_config(None, environ={"JAMNET_MEDIA__TICK": "5"})


def test_bad_toml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[http\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})


def test_key_password_variables_are_not_config_keys() -> None:
    from node.config import load_config

    environ = {"JAMNET_KEY_PASSWORD": "x", "JAMNET_KEY_PASSWORD_FILE": "/run/secrets/p",
               "JAMNET_HTTP__PORT": "9001"}  # fmt: skip
    assert load_config(None, {}, environ=environ).http.port == 9001
