"""The stream job on EMR Serverless: the ``StartJobRun`` request, built from the same settings as everywhere else.

    python -m tweetdesk.stream.emr --application-id ID --role-arn ARN --code s3://bucket/code > job.json
    aws emr-serverless start-job-run --cli-input-json file://job.json

The job runs the packed virtualenv (``<code>/tweetdesk-venv.tar.gz``: tweetdesk's wheel and its dependencies
except pyspark, which EMR provides) through ``spark.archives``, and ``<code>/stream_entry.py`` as its entry
point. Every ``TWEETDESK_*`` setting given here (environment or arguments) is passed to the driver and the
executors as environment variables, so the job reads the same ``Settings`` as on a laptop. Secrets are refused:
a job run's parameters are visible to anyone who may list job runs (the stream job needs none: MSK and S3 use
the job's IAM role).
"""

from __future__ import annotations

import json
import sys

from pydantic import SecretStr

from tweetdesk.config import Settings
from tweetdesk.errors import ConfigError

VENV_ARCHIVE = "tweetdesk-venv.tar.gz"
ENTRY_POINT = "stream_entry.py"
# Settings the job must carry even when they equal the defaults (the reader of the job run should see them).
ALWAYS = ("kafka_bootstrap", "kafka_auth", "parquet_uri", "checkpoint_uri")
# Driver and executors: a streaming job of small micro-batches; raise maxExecutors for more Kafka partitions.
SPARK_DEFAULTS = {
    "spark.driver.cores": "2",
    "spark.driver.memory": "4g",
    "spark.executor.cores": "2",
    "spark.executor.memory": "4g",
    "spark.dynamicAllocation.minExecutors": "1",
    "spark.dynamicAllocation.maxExecutors": "4",
    "spark.sql.session.timeZone": "UTC",
}


def _env_value(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def job_environment(settings: Settings) -> dict[str, str]:
    """``TWEETDESK_*`` variables for the job: the settings explicitly set, plus the ones in ``ALWAYS``."""
    names = sorted(set(settings.model_fields_set) | set(ALWAYS))
    env = {}
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            raise ConfigError(f"TWEETDESK_{name.upper()} is a secret: the stream job does not need it, and a job "
                              "run's parameters are not secret")
        if value is not None:
            env[f"TWEETDESK_{name.upper()}"] = _env_value(value)
    if settings.kafka_bootstrap is None:
        raise ConfigError("the stream job needs TWEETDESK_KAFKA_BOOTSTRAP (the MSK bootstrap brokers, IAM port 9098)")
    for name in ("parquet_uri", "checkpoint_uri"):
        if not str(getattr(settings, name) or "").startswith("s3://"):
            raise ConfigError(f"on EMR TWEETDESK_{name.upper()} must be an s3:// URI (the job's disks are not kept)")
    return env


def spark_submit_parameters(settings: Settings, code: str, conf: dict[str, str] | None = None) -> str:
    """``sparkSubmitParameters``: the packed venv as the Python of driver and executors, settings as env vars."""
    python = "./environment/bin/python"
    props = {
        **SPARK_DEFAULTS,
        "spark.archives": f"{code.rstrip('/')}/{VENV_ARCHIVE}#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": python,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": python,
        "spark.executorEnv.PYSPARK_PYTHON": python,
    }
    for key, value in job_environment(settings).items():
        props[f"spark.emr-serverless.driverEnv.{key}"] = value
        props[f"spark.executorEnv.{key}"] = value
    props.update(conf or {})
    return " ".join(f"--conf {k}={_quote(v)}" for k, v in props.items())


def _quote(value: str) -> str:
    # sparkSubmitParameters is split on spaces like a shell line: quote values that hold spaces or quotes.
    if any(c in value for c in " \"'"):
        return "'" + value.replace("'", "'\"'\"'") + "'"
    return value


def start_job_run_request(settings: Settings, *, application_id: str, role_arn: str, code: str,
                          name: str = "tweetdesk-stream", log_group: str | None = None) -> dict:
    """The ``StartJobRun`` request (``aws emr-serverless start-job-run --cli-input-json``), streaming mode."""
    request = {
        "applicationId": application_id,
        "executionRoleArn": role_arn,
        "name": name,
        "mode": "STREAMING",
        # EMR restarts a failed streaming job from its checkpoint, at most this often an hour.
        "retryPolicy": {"maxFailedAttemptsPerHour": 5},
        "jobDriver": {"sparkSubmit": {
            "entryPoint": f"{code.rstrip('/')}/{ENTRY_POINT}",
            "sparkSubmitParameters": spark_submit_parameters(settings, code),
        }},
    }
    if log_group:
        request["configurationOverrides"] = {"monitoringConfiguration": {"cloudWatchLoggingConfiguration": {
            "enabled": True, "logGroupName": log_group, "logStreamNamePrefix": name}}}
    return request


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tweetdesk.stream.emr", description=__doc__.split("\n\n")[0])
    p.add_argument("--application-id", required=True)
    p.add_argument("--role-arn", required=True, help="the job's execution role (StreamJobRoleArn output)")
    p.add_argument("--code", required=True, help="s3:// prefix holding the packed venv and the entry point")
    p.add_argument("--log-group", help="CloudWatch log group for the driver and executors")
    args = p.parse_args(argv)
    try:
        request = start_job_run_request(Settings(), application_id=args.application_id, role_arn=args.role_arn,
                                        code=args.code, log_group=args.log_group)
    except ConfigError as e:
        print(f"tweetdesk: error: {e}", file=sys.stderr)
        return 1
    json.dump(request, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
