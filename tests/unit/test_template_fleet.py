"""The fleet's settings agree with each other and with the code: what must match does (cfn-lint and
``sam validate --lint``, run by ``make deploy-check``, check the template's syntax; this checks its sense)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from airlock.devstack.template import load_template
from proxy.recording import RecordingSettings
from proxy.settings import ProxySettings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
DOCKERFILE = (ROOT / "proxy" / "Dockerfile").read_text()


def _of_type(kind: str) -> dict[str, Any]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def _container() -> dict[str, Any]:
    (task,) = _of_type("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return dict(container)


def _environment() -> dict[str, Any]:
    return {v["Name"]: v["Value"] for v in _container()["Environment"]}


def _dockerfile_env(name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", DOCKERFILE)
    assert match, f"proxy/Dockerfile sets no {name}"
    return match.group(1)


def test_every_log_group_expires_and_every_function_writes_to_its_own() -> None:
    groups = _of_type("AWS::Logs::LogGroup")
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values())
    for name, function in _of_type("AWS::Serverless::Function").items():
        group = function["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        assert group in groups, f"{name} needs a log group of its own (LoggingConfig.LogGroup) with a retention"


def test_health_check_is_the_proxys_own_endpoint_and_reachable() -> None:
    (target_group,) = _of_type("AWS::ElasticLoadBalancingV2::TargetGroup").values()
    props = target_group["Properties"]
    health_port = _environment()["AIRLOCK_PROXY_HEALTH_PORT"]
    assert (props["HealthCheckProtocol"], props["HealthCheckPath"]) == ("HTTP", "/healthz")
    assert props["HealthCheckPort"] == health_port == _dockerfile_env("AIRLOCK_PROXY_HEALTH_PORT")
    assert f"127.0.0.1:{health_port}/healthz" in DOCKERFILE  # the image's HEALTHCHECK
    assert f"127.0.0.1:{health_port}/healthz" in " ".join(_container()["HealthCheck"]["Command"])
    # The tasks admit the health checks from the load balancer's security group.
    rules = [r["Properties"] for r in _of_type("AWS::EC2::SecurityGroupIngress").values()]
    assert {"GroupId": {"Ref": "ProxySecurityGroup"}, "IpProtocol": "tcp", "FromPort": int(health_port),
            "ToPort": int(health_port), "SourceSecurityGroupId": {"Ref": "ProxyLoadBalancerSecurityGroup"}}.items() <= \
        next(r for r in rules if r["FromPort"] == int(health_port)).items()
    assert {"ContainerPort": int(health_port), "Protocol": "tcp"} in _container()["PortMappings"]


def test_stop_timeout_covers_the_drain_and_the_sealing() -> None:
    container = _container()
    assert _environment()["AIRLOCK_PROXY_DRAIN_SECONDS"] == {"Ref": "ProxyDrainSeconds"}
    longest_drain = PARAMETERS["ProxyDrainSeconds"]["MaxValue"]
    assert container["StopTimeout"] >= longest_drain + RecordingSettings().close_timeout
    assert container["StopTimeout"] <= 120  # Fargate's limit
    assert ProxySettings.model_fields["drain_seconds"].default <= PARAMETERS["ProxyDrainSeconds"]["Default"]
    (target_group,) = _of_type("AWS::ElasticLoadBalancingV2::TargetGroup").values()
    attributes = {a["Key"]: a["Value"] for a in target_group["Properties"]["TargetGroupAttributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == {"Ref": "ProxyDeregistrationDelaySeconds"}


def test_read_only_root_with_tmpdir_on_the_volume() -> None:
    container = _container()
    assert container["ReadonlyRootFilesystem"] is True
    (mount,) = container["MountPoints"]
    assert _environment()["TMPDIR"] == mount["ContainerPath"] == _dockerfile_env("TMPDIR")
    assert "USER 10001" in DOCKERFILE
    assert container["Image"] == {"Fn::Sub": "${ProxyRepository.RepositoryUri}:${ProxyImageTag}"}


def test_fleet_scales_and_propagates_tags() -> None:
    service = RESOURCES["ProxyService"]["Properties"]
    assert service["PropagateTags"] == "SERVICE" and service["EnableECSManagedTags"] is True
    (target,) = _of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert target["Properties"]["ResourceId"] == {"Fn::Sub": "service/${ProxyCluster}/${ProxyService.Name}"}
    (policy,) = _of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    assert policy["Properties"]["PolicyType"] == "TargetTrackingScaling"


def test_alarms_watch_what_the_issue_names() -> None:
    watched = set()
    for alarm in _of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        metrics = [props.get("MetricName")] + [m["MetricStat"]["Metric"]["MetricName"]
                                               for m in props.get("Metrics", []) if "MetricStat" in m]
        dimensions = {str(d["Value"]) for d in props.get("Dimensions", [])} | {
            str(d["Value"]) for m in props.get("Metrics", []) if "MetricStat" in m
            for d in m["MetricStat"]["Metric"].get("Dimensions", [])}
        watched.update((metric, dimension) for metric in metrics if metric for dimension in dimensions or {""})
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert ("Errors", "{'Ref': 'AuthorizeFunction'}") in watched
    assert ("Throttles", "{'Ref': 'AuthorizeFunction'}") in watched
    assert ("Errors", "{'Ref': 'SweeperFunction'}") in watched and ("SweepFailures", "airlock") in watched
    for function in ("ApprovalsFunction", "SlackInteractionsFunction", "ApprovalLinksFunction"):
        assert ("Errors", f"{{'Ref': '{function}'}}") in watched
    assert any(metric == "UnHealthyHostCount" for metric, _ in watched)
    assert {"RunningTaskCount", "DesiredTaskCount"} <= {metric for metric, _ in watched}
    assert ("AuditLinesDropped", "") in watched
    # The dropped-lines metric counts the proxy's own log lines: they must still say what the filter seeks.
    audit_source = (ROOT / "shared" / "recording" / "audit.py").read_text()
    assert "dropping audit lines" in audit_source and "audit writer closing with" in audit_source
    assert _of_type("AWS::CloudWatch::Dashboard")
