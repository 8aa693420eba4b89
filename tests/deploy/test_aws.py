"""The AWS reference deployment (deploy/aws/, AWS CDK for Python): synthesised offline, then cfn-lint and checkov on
the CloudFormation template, then the containers' commands and settings against the CLI and Settings.

The CDK, cfn-lint and checkov live in their own virtualenv (deploy/.venv, `make deploy-tools`): their pinned
dependencies would fight the project's. Without it (or without Node.js, which the CDK's jsii runtime needs) the
tests skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.fixtures.deploy import check_cli, check_settings_values, setting_names
from tests.fixtures.figures import record_figures
from tweetdesk.config import REPO_ROOT

AWS_DIR = REPO_ROOT / "deploy" / "aws"
VENV_BIN = REPO_ROOT / "deploy" / ".venv" / "bin"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
# cfn-lint rules off for the whole template, each with its reason:
LINT_IGNORED = {
    # The CDK writes an explicit DependsOn next to a Ref/GetAtt in its own constructs (the ALB listener before the
    # ECS service, its custom-resource provider's role): redundant, harmless, and not ours to change.
    "W3005": "redundant DependsOn written by the CDK's own constructs",
}


def _env() -> dict[str, str]:
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
           "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1", "CDK_DISABLE_VERSION_CHECK": "1"}
    env.pop("CDK_DEFAULT_ACCOUNT", None)
    return env


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    if not (VENV_BIN.parent / ".installed-stamp").exists():
        pytest.skip("deploy tooling not installed: run `make deploy-tools` (creates deploy/.venv with aws-cdk-lib, "
                    "cfn-lint, checkov)")
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed (the CDK's jsii runtime needs it)")
    out = tmp_path_factory.mktemp("cdk.out")
    context = json.loads((AWS_DIR / "cdk.json").read_text())["context"]
    env = {**_env(), "CDK_OUTDIR": str(out),
           "CDK_CONTEXT_JSON": json.dumps({**context, "certificateArn": CERT, "imageTag": "0.1.0"})}
    t0 = time.monotonic()
    r = subprocess.run([str(VENV_BIN / "python"), "app.py"], cwd=AWS_DIR, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"cdk synth failed:\n{r.stderr[-4000:]}"
    record_figures("cdk synth", seconds=f"{time.monotonic() - t0:.1f}")
    path = out / "Tweetdesk.template.json"
    pytest.template_path = path  # for the scanners below
    return json.loads(path.read_text())


def _resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_clean(template):
    r = subprocess.run([str(VENV_BIN / "cfn-lint"), "--ignore-checks", *LINT_IGNORED, "--",
                        str(pytest.template_path)], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, f"cfn-lint:\n{r.stdout}\n{r.stderr}"


def test_checkov_clean(template):
    t0 = time.monotonic()
    r = subprocess.run([str(VENV_BIN / "checkov"), "-f", str(pytest.template_path), "--framework", "cloudformation",
                        "--skip-download", "--quiet", "--compact", "-o", "json"],
                       capture_output=True, text=True, env=_env(), timeout=600)
    report = json.loads(r.stdout)
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
    assert not failed and r.returncode == 0, f"checkov failed checks: {failed}"
    skipped = results.get("skipped_checks", [])
    for c in skipped:  # every silenced rule carries its reason (deploy/aws/checks.py)
        assert (c.get("check_result", {}).get("suppress_comment") or "").strip(), c["check_id"]
    summary = report["summary"]
    record_figures("checkov", passed=summary["passed"], failed=summary["failed"], skipped=summary["skipped"],
                   seconds=f"{time.monotonic() - t0:.0f}")
    assert summary["passed"] > 100


def _containers(template: dict) -> dict[str, dict]:
    out = {}
    for tid, td in _resources(template, "AWS::ECS::TaskDefinition").items():
        for c in td["Properties"]["ContainerDefinitions"]:
            out[c["Name"]] = c
    return out


def test_containers_match_cli_and_settings(template, monkeypatch):
    containers = _containers(template)
    assert set(containers) == {"Serve", "Ingest"}
    for name, c in containers.items():
        check_cli(c["Command"])
        env = {e["Name"]: e["Value"] for e in c.get("Environment", [])}
        secrets = {s["Name"]: s["ValueFrom"] for s in c.get("Secrets", [])}
        setting_names({**env, **secrets})
        # Values known at synth time must be values Settings accepts (the rest are resolved by CloudFormation).
        plain = {k: v for k, v in env.items() if isinstance(v, str)}
        s = check_settings_values({**plain, "TWEETDESK_KAFKA_BOOTSTRAP": "b-1.x:9098", "AWS_REGION": "eu-west-1"},
                                  monkeypatch)
        assert s.kafka_auth == "msk_iam"
        assert c["ReadonlyRootFilesystem"] is True
        assert any(m["ContainerPath"] == s.work_dir.as_posix() for m in c["MountPoints"]), name
    serve = containers["Serve"]
    names = {x["Name"] for x in serve["Secrets"]}
    assert {"TWEETDESK_DATABASE_SECRET", "TWEETDESK_API_KEY", "TWEETDESK_X_ACCESS_TOKEN"} <= names
    assert serve["PortMappings"][0]["ContainerPort"] == int({e["Name"]: e["Value"] for e in serve["Environment"]}
                                                            ["TWEETDESK_PORT"])
    # ingest polls the mentions timeline with user context: the four OAuth 1.0a secrets, nothing else
    assert {x["Name"] for x in containers["Ingest"]["Secrets"]} == {
        "TWEETDESK_X_CONSUMER_KEY", "TWEETDESK_X_CONSUMER_SECRET", "TWEETDESK_X_ACCESS_TOKEN",
        "TWEETDESK_X_ACCESS_TOKEN_SECRET"}


def _statements(template: dict) -> list[dict]:
    out = []
    for p in _resources(template, "AWS::IAM::Policy").values():
        out += p["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_least_privilege(template):
    for st in _statements(template):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), st
        if any(a.startswith("kafka-cluster:") for a in actions):
            assert "*" not in resources, f"Kafka access must name its cluster/topics/groups: {st}"
    # The public-facing service reads its topics and cannot write any.
    serve_role = next(k for k, v in _resources(template, "AWS::IAM::Role").items()
                      if k.startswith("ServeTaskTaskRole"))
    serve_actions = set()
    for p in _resources(template, "AWS::IAM::Policy").values():
        if {"Ref": serve_role} in p["Properties"]["Roles"]:
            for st in p["Properties"]["PolicyDocument"]["Statement"]:
                serve_actions |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    assert "kafka-cluster:ReadData" in serve_actions and "kafka-cluster:WriteData" not in serve_actions


def test_the_pieces(template):
    msk = _resources(template, "AWS::MSK::ServerlessCluster")
    assert [m["Properties"]["ClientAuthentication"]["Sasl"]["Iam"]["Enabled"] for m in msk.values()] == [True]
    emr = next(iter(_resources(template, "AWS::EMRServerless::Application").values()))["Properties"]
    assert emr["ReleaseLabel"].startswith("emr-spark-8") and emr["Type"] == "Spark"  # Spark 4 (Python data sources)
    db = next(iter(_resources(template, "AWS::RDS::DBInstance").values()))["Properties"]
    assert db["Engine"] == "postgres" and db["StorageEncrypted"] is True and db["MultiAZ"] is True
    assert db.get("PubliclyAccessible", False) is False
    listeners = _resources(template, "AWS::ElasticLoadBalancingV2::Listener")
    protocols = sorted(v["Properties"]["Protocol"] for v in listeners.values())
    assert protocols == ["HTTP", "HTTPS"]
    http = next(v for v in listeners.values() if v["Properties"]["Protocol"] == "HTTP")
    assert http["Properties"]["DefaultActions"][0]["Type"] == "redirect"
    tg = next(iter(_resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()))["Properties"]
    assert tg["HealthCheckPath"] == "/healthz"
    # serve sits behind the ALB: failed sign-ins must be counted per forwarded client, not per load balancer.
    serve = next(c for td in _resources(template, "AWS::ECS::TaskDefinition").values()
                 for c in td["Properties"]["ContainerDefinitions"] if c["Name"] == "Serve")
    assert {e["Name"]: e["Value"] for e in serve["Environment"]}["TWEETDESK_TRUSTED_PROXIES"] == "1"
    for g in _resources(template, "AWS::Logs::LogGroup").values():
        assert g["Properties"].get("RetentionInDays") and g["Properties"].get("KmsKeyId")
