"""Kafka authentication chosen by ``TWEETDESK_KAFKA_AUTH``: ``none`` (whatever ``TWEETDESK_KAFKA_CONFIG`` says) or
``msk_iam`` (Amazon MSK with IAM access control).

MSK IAM with confluent-kafka is SASL/OAUTHBEARER over TLS, the token being a SigV4-signed request that
``aws-msk-iam-sasl-signer-python`` makes from the process's AWS credentials (an ECS task role, EMR's job role).
librdkafka asks for a token through ``oauth_cb``, a Python callable: configurations travel as JSON (to Spark's
Python workers) without it, carrying the region in librdkafka's own ``sasl.oauthbearer.config``, and
``with_callbacks`` adds the callable where a client is made.
"""

from __future__ import annotations

import os

from tweetdesk.config import KafkaSettings
from tweetdesk.errors import ConfigError

_MSK_IAM = "msk_iam"
# librdkafka passes this property's value to oauth_cb; ours reads the region from it.
_OAUTH_CONFIG = "sasl.oauthbearer.config"


def _region(kafka: KafkaSettings) -> str:
    region = kafka.aws_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("TWEETDESK_KAFKA_AUTH=msk_iam needs a region: set TWEETDESK_AWS_REGION or AWS_REGION")
    return region


def auth_config(kafka: KafkaSettings) -> dict[str, str]:
    """The librdkafka properties for ``kafka.auth`` (TWEETDESK_KAFKA_AUTH; JSON-serialisable, no callables)."""
    if kafka.auth != _MSK_IAM:
        return {}
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        _OAUTH_CONFIG: f"{_MSK_IAM} region={_region(kafka)}",
    }


def msk_iam_token(oauth_config: str) -> tuple[str, float]:
    """librdkafka's ``oauth_cb``: a fresh MSK IAM token and its expiry (seconds since the epoch)."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    fields = dict(part.split("=", 1) for part in (oauth_config or "").split() if "=" in part)
    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(fields["region"])
    return token, expiry_ms / 1000


def uses_msk_iam(conf: dict) -> bool:
    return str(conf.get(_OAUTH_CONFIG, "")).startswith(_MSK_IAM)


def with_callbacks(conf: dict) -> dict:
    """``conf`` plus the ``oauth_cb`` it needs, if any: call this where a Producer/Consumer/AdminClient is made.

    A client with an ``oauth_cb`` must also be polled once before its first request (``prime``), or librdkafka
    never asks for the token (confluent-kafka-python issue 1713).
    """
    return {**conf, "oauth_cb": msk_iam_token} if uses_msk_iam(conf) else conf


def prime(client, conf: dict) -> None:
    """Serve the client's first token request now (a no-op unless it authenticates with ``oauth_cb``)."""
    if uses_msk_iam(conf):
        client.poll(0)


def jvm_config(kafka: KafkaSettings, conf: dict) -> dict[str, str]:
    """The same connection for the JVM Kafka client (Spark's native ``kafka`` source), which signs with the
    ``aws-msk-iam-auth`` jar instead: it must be on Spark's classpath with the ``spark-sql-kafka`` one."""
    if kafka.auth != _MSK_IAM:
        return conf
    out = {k: v for k, v in conf.items() if k not in (_OAUTH_CONFIG, "sasl.mechanism", "security.protocol")}
    out.update({
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "AWS_MSK_IAM",
        "sasl.jaas.config": "software.amazon.msk.auth.iam.IAMLoginModule required;",
        "sasl.client.callback.handler.class": "software.amazon.msk.auth.iam.IAMClientCallbackHandler",
    })
    return out
