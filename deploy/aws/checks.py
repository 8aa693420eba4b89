"""Silencing a scanner's rule is done here, per resource, with the reason written next to the rule id: checkov
reads ``Metadata.checkov.skip`` and cfn-lint ``Metadata.cfn-lint.config.ignore_checks`` of each resource."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def _cfn(node: IConstruct) -> cdk.CfnResource:
    res = node if isinstance(node, cdk.CfnResource) else node.node.default_child
    if not isinstance(res, cdk.CfnResource):
        raise TypeError(f"{node.node.path} has no CloudFormation resource to annotate")
    return res


def skip_checks(node: IConstruct, reasons: dict[str, str]) -> None:
    """Skip checkov rules on one resource; every rule needs its reason."""
    res = _cfn(node)
    current = res.get_metadata("checkov") or {"skip": []}
    current["skip"] += [{"id": rule, "comment": why} for rule, why in reasons.items() if why]
    res.add_metadata("checkov", current)


def skip_lint(node: IConstruct, reasons: dict[str, str]) -> None:
    """Skip cfn-lint rules on one resource; every rule needs its reason (kept in the metadata too)."""
    res = _cfn(node)
    res.add_metadata("cfn-lint", {"config": {"ignore_checks": sorted(reasons)}, "reasons": reasons})
