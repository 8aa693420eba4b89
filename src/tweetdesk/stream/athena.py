"""The Parquet the stream job writes, as an Athena / Glue table: the DDL is derived from the stream's own schema
(``stream/schema.py``), so it follows every column change.

    python -m tweetdesk.stream.athena s3://<data bucket>/parquet/ [--database tweetdesk] [--table tweets]

prints ``CREATE EXTERNAL TABLE``; run it in Athena, then ``MSCK REPAIR TABLE`` (or a Glue crawler) to load the
``day=…/batch_id=…`` partitions as they appear.
"""

from __future__ import annotations

import sys

from tweetdesk.stream.schema import ENRICHED_COLUMNS, PARQUET_PARTITIONS, PARQUET_SCHEMA


def hive_type(dtype) -> str:
    """Spark type -> Hive/Athena DDL type, every struct field name quoted (``end``, ``type`` are keywords)."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.ArrayType):
        return f"array<{hive_type(dtype.elementType)}>"
    if isinstance(dtype, T.StructType):
        return "struct<" + ",".join(f"`{f.name}`:{hive_type(f.dataType)}" for f in dtype.fields) + ">"
    if isinstance(dtype, T.MapType):
        return f"map<{hive_type(dtype.keyType)},{hive_type(dtype.valueType)}>"
    return {"long": "bigint", "integer": "int"}.get(dtype.simpleString(), dtype.simpleString())


def columns() -> list[tuple[str, str]]:
    """(name, Athena type) of every Parquet data column, in file order."""
    by_name = {f.name: f for f in PARQUET_SCHEMA.fields}
    return [(name, hive_type(by_name[name].dataType)) for name in ENRICHED_COLUMNS]


def create_table_ddl(location: str, database: str = "tweetdesk", table: str = "tweets") -> str:
    cols = ",\n".join(f"  `{name}` {typ}" for name, typ in columns())
    parts = ", ".join(f"`{p}` string" for p in PARQUET_PARTITIONS)
    return (f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{table}` (\n{cols}\n)\n"
            f"PARTITIONED BY ({parts})\nSTORED AS PARQUET\nLOCATION '{location.rstrip('/')}/'\n"
            "TBLPROPERTIES ('parquet.compression'='SNAPPY');")


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tweetdesk.stream.athena", description=__doc__.split("\n\n")[0])
    p.add_argument("location", help="s3:// prefix of the Parquet (TWEETDESK_PARQUET_URI)")
    p.add_argument("--database", default="tweetdesk")
    p.add_argument("--table", default="tweets")
    args = p.parse_args(argv)
    print(create_table_ddl(args.location, args.database, args.table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
