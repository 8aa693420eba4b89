"""Spark and Arrow schemas, derived from the pydantic records in ``tweetdesk.records`` (never written by hand).

``spark_schema(EnrichedTweet)`` is the Parquet schema; the Kafka columns are Spark's own ``kafka`` source
columns, so the Python source and the native one feed the same downstream code.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from functools import lru_cache

from pydantic import BaseModel
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from tweetdesk.records import EnrichedTweet

_SCALARS: dict[type, DataType] = {
    str: StringType(),
    int: LongType(),  # tweet-scale counters and offsets: never risk 32-bit overflow
    float: DoubleType(),
    bool: BooleanType(),
    bytes: BinaryType(),
    dt.datetime: TimestampType(),
    dt.date: DateType(),
}


class SchemaError(TypeError):
    """A record field whose Python type has no Spark equivalent here (extend ``spark_type``)."""


def _strip_optional(ann) -> tuple[object, bool]:
    """``X | None`` -> (X, True); anything else -> (ann, False)."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) != 1:
            raise SchemaError(f"unions other than 'X | None' are not supported: {ann}")
        return args[0], len(args) < len(typing.get_args(ann))
    return ann, False


def spark_type(ann) -> DataType:
    """The Spark type of one Python/pydantic annotation (Optional is handled by the caller)."""
    ann, _ = _strip_optional(ann)
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        kinds = {type(a) for a in typing.get_args(ann)}
        if len(kinds) != 1:
            raise SchemaError(f"Literal of mixed types: {ann}")
        return spark_type(kinds.pop())
    if origin in (list, tuple, set, frozenset):
        (item,) = typing.get_args(ann)[:1]
        inner, nullable = _strip_optional(item)
        return ArrayType(spark_type(inner), containsNull=nullable)
    if origin is dict:
        k, v = typing.get_args(ann)
        inner, nullable = _strip_optional(v)
        return MapType(spark_type(k), spark_type(inner), valueContainsNull=nullable)
    if isinstance(ann, type):
        if issubclass(ann, BaseModel):
            return spark_schema(ann)
        if issubclass(ann, enum.Enum):
            return spark_type(type(next(iter(ann)).value))
        for py, sp in _SCALARS.items():
            # exact match first: bool is an int and datetime is a date
            if ann is py:
                return sp
        for py, sp in _SCALARS.items():
            if issubclass(ann, py):
                return sp
    raise SchemaError(f"no Spark type for annotation {ann!r}")


@lru_cache(maxsize=None)
def spark_schema(model: type[BaseModel], all_nullable: bool = False) -> StructType:
    """StructType with one field per pydantic field, in declaration order.

    A field is nullable when the model accepts None for it. ``all_nullable`` makes every top-level
    field nullable (for intermediate frames where a dead-lettered row has no enriched values).
    """
    fields = []
    for name, info in model.model_fields.items():
        _, optional = _strip_optional(info.annotation)
        fields.append(StructField(name, spark_type(info.annotation), nullable=optional or all_nullable))
    return StructType(fields)


# --- the frames of the job ------------------------------------------------------------------------

# Spark's native `kafka` source columns (the Python source produces exactly these).
KAFKA_SCHEMA = StructType([
    StructField("key", BinaryType()),
    StructField("value", BinaryType()),
    StructField("topic", StringType()),
    StructField("partition", IntegerType()),
    StructField("offset", LongType()),
    StructField("timestamp", TimestampType()),
    StructField("timestampType", IntegerType()),
])

ENRICHED_SCHEMA = spark_schema(EnrichedTweet)
ENRICHED_COLUMNS: tuple[str, ...] = tuple(ENRICHED_SCHEMA.fieldNames())

# Parquet partition columns: the UTC day of created_at (deterministic, so a replayed micro-batch
# rewrites exactly the partitions it wrote the first time) and the micro-batch id (the unit of
# idempotent overwrite). See stream/sink.py.
DAY_COLUMN = "day"
BATCH_COLUMN = "batch_id"
PARQUET_PARTITIONS = (DAY_COLUMN, BATCH_COLUMN)

# The output of the per-record transform (one row per Kafka record): what to do with it (`kind`), the Kafka message
# to publish (`out_key`/`payload`: the EnrichedTweet or DeadLetter as JSON) and the Parquet `day` of an enriched
# tweet. The record travels once, as its message; the sink parses the enriched ones into the Parquet columns
# (``PARQUET_SCHEMA``) with Arrow's JSON reader. `model_s`: the enricher's seconds for the row's chunk, shared
# out over its rows (the sink sums them: where a micro-batch's time goes).
KIND_ENRICHED = "enriched"
KIND_DEAD = "dead"
TRANSFORM_SCHEMA = StructType(
    [
        StructField("kind", StringType(), nullable=False),
        StructField("out_key", StringType()),
        StructField("payload", StringType(), nullable=False),
        StructField(DAY_COLUMN, StringType()),
        StructField("model_s", DoubleType()),
    ]
)
# What the sink reads the enriched payloads as (every field nullable, as JSON parsing gives them).
PARQUET_SCHEMA = spark_schema(EnrichedTweet, all_nullable=True)


def arrow_schema(schema: StructType, timezone: str = "UTC"):
    """The Arrow schema Spark uses for ``schema`` (what mapInArrow/Python data sources must emit)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, timezone=timezone)
