"""The sample webhooks' decisions, through jsonpatch as the apiserver applies them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

import jsonpatch
import pytest

from sample_webhook import require_limits, sidecar_injector, statefulset_node_selector
from tests.reviews import pod

IMAGE, CONFIGMAP = "nginx:test", "nginx-sidecar-config"


def inject(obj: dict[str, Any]) -> dict[str, Any]:
    patch = sidecar_injector.sidecar_patch(obj, image=IMAGE, configmap=CONFIGMAP)
    result: dict[str, Any] = jsonpatch.apply_patch(obj, patch)
    return result


def test_sidecar_is_added_with_volume_and_annotation_created_when_absent() -> None:
    injected = inject(pod())
    names = [c["name"] for c in injected["spec"]["containers"]]
    assert names == ["app", "nginx-sidecar"]
    sidecar = injected["spec"]["containers"][1]
    assert sidecar["ports"][0]["containerPort"] == 80
    assert sidecar["volumeMounts"][0]["mountPath"] == "/etc/nginx/conf.d"
    assert injected["spec"]["volumes"] == [
        {"name": "nginx-sidecar-config", "configMap": {"name": CONFIGMAP}}
    ]
    assert injected["metadata"]["annotations"] == {"sidecar-injector/injected": "true"}


def test_sidecar_keeps_other_annotations_and_volumes() -> None:
    obj = pod(annotations={"team": "a", "x~y/z": "1"})
    obj["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    injected = inject(obj)
    assert injected["metadata"]["annotations"] == {
        "team": "a",
        "x~y/z": "1",
        "sidecar-injector/injected": "true",
    }
    assert [v["name"] for v in injected["spec"]["volumes"]] == ["data", "nginx-sidecar-config"]


def test_a_second_pass_over_injected_output_changes_nothing() -> None:
    once = inject(pod())
    assert sidecar_injector.sidecar_patch(once, image=IMAGE, configmap=CONFIGMAP) == []


@pytest.mark.parametrize("value", ["false", "no", "off", "False", " OFF "])
def test_pods_that_opt_out_are_left_alone(value: str) -> None:
    obj = pod(annotations={"sidecar-injector/inject": value})
    assert sidecar_injector.sidecar_patch(obj, image=IMAGE, configmap=CONFIGMAP) == []


def stateful_pod(name: str, annotation: str | None, **labels: str) -> dict[str, Any]:
    obj = pod(
        name=name,
        labels={"ab-build-different": "true", **labels},
        ownerReferences=[{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}],
    )
    if annotation is not None:
        obj["metadata"]["annotations"] = {"custom-node-selector": annotation}
    return obj


SELECTOR = '{"key":"name","even":"node1","odd":"node2"}'


@pytest.mark.parametrize(
    ("name", "node"), [("db-0", "node1"), ("db-1", "node2"), ("db-12", "node1")]
)
def test_statefulset_pods_go_to_the_node_of_their_ordinal_parity(name: str, node: str) -> None:
    obj = stateful_pod(name, SELECTOR)
    patch, warnings = statefulset_node_selector.node_selector_patch(obj)
    assert warnings == []
    assert jsonpatch.apply_patch(obj, patch)["spec"]["nodeSelector"] == {"name": node}


def test_the_pod_index_label_wins_and_other_selector_keys_are_kept() -> None:
    obj = stateful_pod("db-0", SELECTOR, **{"apps.kubernetes.io/pod-index": "3"})
    obj["spec"]["nodeSelector"] = {"disk": "ssd"}
    patch, _ = statefulset_node_selector.node_selector_patch(obj)
    assert jsonpatch.apply_patch(obj, patch)["spec"]["nodeSelector"] == {
        "disk": "ssd",
        "name": "node2",
    }


@pytest.mark.parametrize("annotation", [None, "{broken", '{"key":"name"}', "[]"])
def test_a_missing_or_malformed_annotation_allows_with_a_warning(annotation: str | None) -> None:
    patch, warnings = statefulset_node_selector.node_selector_patch(
        stateful_pod("db-1", annotation)
    )
    assert patch == [] and len(warnings) == 1 and "custom-node-selector" in warnings[0]


def test_pods_not_owned_by_a_statefulset_are_left_alone() -> None:
    obj = stateful_pod("db-1", SELECTOR)
    obj["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x"}]
    assert statefulset_node_selector.node_selector_patch(obj) == ([], [])


def test_the_dingtalk_url_is_signed_with_hmac_sha256() -> None:
    url = statefulset_node_selector.signed_url(
        "https://oapi.dingtalk.com/robot/send?access_token=t", "SEC", now_ms=1700000000000
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    expected = base64.b64encode(
        hmac.new(b"SEC", b"1700000000000\nSEC", hashlib.sha256).digest()
    ).decode()
    assert query["timestamp"] == ["1700000000000"] and query["sign"] == [expected]
    assert query["access_token"] == ["t"]


def test_containers_without_limits_are_named_in_the_denial() -> None:
    obj = pod()
    obj["spec"]["containers"].append(
        {"name": "ok", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    )
    problems = require_limits.missing_limits(obj)
    assert problems == ["container 'app' has no resources.limits.cpu or resources.limits.memory"]
    assert json.dumps(problems)
