"""Settings sections: frozen, typed views of the flat settings, which stay the source of truth (every
TWEETDESK_* name and every flat attribute keeps working)."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from tweetdesk.config import SECTIONS, KafkaSettings, ModelSettings, Settings
from tweetdesk.kafka.client import client_config


def test_every_flat_setting_is_in_a_section_under_its_env_name(monkeypatch):
    monkeypatch.setenv("TWEETDESK_KAFKA_BOOTSTRAP", "h:9092")
    monkeypatch.setenv("TWEETDESK_TOPIC_RAW", "in")
    monkeypatch.setenv("TWEETDESK_X_RULES", '["@delta"]')
    monkeypatch.setenv("TWEETDESK_REPLY_LIMIT", "7")
    monkeypatch.setenv("TWEETDESK_ENTITY_MODE", "model")
    s = Settings()
    covered = {cls.flat_name(f) for cls in SECTIONS.values() for f in cls.model_fields}
    assert set(Settings.model_fields) <= covered
    assert (s.kafka_bootstrap, s.kafka.bootstrap, s.kafka.topic_raw) == ("h:9092", "h:9092", "in")
    assert s.x.rules == s.x_rules == ["@delta"] and s.reply.limit == s.reply_limit == 7
    assert s.models.entity_mode == "model"
    for name, cls in SECTIONS.items():  # each section field reads its flat field
        section = getattr(s, name)
        assert isinstance(section, cls)
        assert all(getattr(section, f) == getattr(s, cls.flat_name(f)) for f in cls.model_fields)


def test_sections_are_read_only_views_that_follow_the_flat_fields(tmp_path):
    s = Settings(work_dir=tmp_path, topic_raw="a")
    with pytest.raises(ValidationError):
        s.kafka.topic_raw = "b"  # frozen
    t = s.model_copy(update={"topic_raw": "b", "kafka_bootstrap": "h:1"})
    assert (s.kafka.topic_raw, t.kafka.topic_raw) == ("a", "b")
    assert t.stream.parquet_dir == tmp_path / "parquet" and t.x.oauth2_token_path == tmp_path / "x_oauth2_tokens.json"
    # One name per value: the derived values live in their section only.
    assert not any(hasattr(t, n) for n in ("parquet_dir", "checkpoint_dir", "db_url", "x_oauth2_token_path",
                                           "x_user_credentials"))
    assert pickle.loads(pickle.dumps(t.kafka)) == t.kafka  # travels to Spark workers like the settings


def test_a_component_takes_its_section():
    s = Settings(kafka_bootstrap="h:1", kafka_config={"client.id": "x"})
    assert client_config(s.kafka) == {"bootstrap.servers": "h:1", "client.id": "x"}
    with pytest.raises(AttributeError):  # the whole settings are not a Kafka section: no narrowing in the callee
        client_config(s)
    kafka = s.kafka
    assert KafkaSettings.of(kafka) is kafka and ModelSettings.of(s) == s.models
