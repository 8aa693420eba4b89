"""Kafka: the confluent-kafka clients and topics (``client``), authentication beyond the config dict such as MSK IAM
(``auth``), and the embedded tansu broker used when no cluster is configured (``broker``)."""
