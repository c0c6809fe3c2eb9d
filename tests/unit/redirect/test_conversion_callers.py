"""CRDs whose conversion webhook calls the redirected Service: found before any change,
redirected with it (our CA appended), and restored field by field and exactly by ``down``.

Against the in-memory cluster of test_apply: discovery lists from it, ``apply_plan`` and
``restore_plan`` write to it, and the plan goes through JSON as ``down`` reads it back from
the journal.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from tests.unit.redirect.test_apply import BEFORE, OUR_CA, TARGET, THEIR_CA, InMemoryCluster
from webhook_dev.errors import ClusterError, PreflightError
from webhook_dev.redirect import callers
from webhook_dev.redirect.apply import apply_plan, reappend_ca, restore_plan
from webhook_dev.redirect.conversions import CRD_COLLECTION
from webhook_dev.redirect.discovery import discover, preflight_warnings, subject_of
from webhook_dev.redirect.plan import RedirectPlan
from webhook_dev.redirect.plan_builder import build_plan, url_hosts
from webhook_dev.redirect.selection import Selection
from webhook_dev.tls import certs

Json = dict[str, Any]
WEBSITES = "websites.samples.webhook-dev.io"
CRD = f"CustomResourceDefinition/{WEBSITES}"
THEIR_BUNDLE = base64.b64encode(THEIR_CA).decode()


def crd(name: str, client_config: Json | None, strategy: str = "Webhook") -> Json:
    plural, _, group = name.partition(".")
    conversion: Json = {"strategy": strategy}
    if client_config is not None:
        conversion["webhook"] = {"clientConfig": client_config, "conversionReviewVersions": ["v1"]}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "names": {"plural": plural, "kind": plural.capitalize()[:-1], "singular": plural[:-1]},
            "scope": "Namespaced",
            "versions": [
                {"name": "v1", "served": True, "storage": True},
                {"name": "v2", "served": True, "storage": False},
            ],
            "conversion": conversion,
        },
    }


SIDECAR_SERVICE = {
    "service": {"namespace": "hooks", "name": "sidecar", "path": "/convert", "port": 443},
    "caBundle": THEIR_BUNDLE,
}
WEBSITES_CRD = crd(WEBSITES, SIDECAR_SERVICE)
ELSEWHERE_CRD = crd(
    "gadgets.other.example.com",
    {"service": {"namespace": "other", "name": "converter", "path": "/convert"}},
)
NO_WEBHOOK_CRD = crd("plain.example.com", None, strategy="None")
URL_CRD = crd("remotes.example.com", {"url": "https://converter.example.com:9443/convert?x=1"})


@pytest.fixture
def cluster() -> InMemoryCluster:
    return InMemoryCluster([*BEFORE, WEBSITES_CRD, ELSEWHERE_CRD, NO_WEBHOOK_CRD, URL_CRD])


def journaled(plan: RedirectPlan) -> RedirectPlan:
    """Through JSON, as ``down`` reads the plan back from the journal."""
    return RedirectPlan.from_json(json.loads(json.dumps(plan.to_json())))


def redirect(cluster: InMemoryCluster, selection: Selection) -> RedirectPlan:
    plan = journaled(build_plan(discover(cluster, selection), TARGET))
    apply_plan(cluster, plan, lambda step: None)
    cluster.writes.clear()
    return plan


def conversion_bundle(cluster: InMemoryCluster, name: str = CRD) -> bytes:
    config = cluster.content()[name]["spec"]["conversion"]["webhook"]["clientConfig"]
    return base64.b64decode(config["caBundle"])


# --- discovery: every caller of the Service -------------------------------------------------


def test_a_service_redirect_finds_its_crd_conversions_and_only_those(
    cluster: InMemoryCluster,
) -> None:
    snapshot = discover(cluster, Selection(service="hooks/sidecar"))

    assert list(snapshot.crds) == [WEBSITES]
    assert [str(ref) for ref in snapshot.entries] == [
        "sidecar-mutate/sidecar-mutate.example.com",
        "sidecar-validate/sidecar-validate.example.com",
    ]


def test_one_named_entry_brings_every_other_caller_of_its_service(
    cluster: InMemoryCluster,
) -> None:
    """The Service is redirected as a whole: a caller left out would reach this machine
    without trusting its CA."""
    snapshot = discover(cluster, Selection(webhook="sidecar-mutate"))

    assert list(snapshot.crds) == [WEBSITES]
    assert len(snapshot.entries) == 2


def test_crd_alone_redirects_its_conversions_service_and_the_services_other_callers(
    cluster: InMemoryCluster,
) -> None:
    snapshot = discover(cluster, Selection(crds=(WEBSITES,)))

    assert list(snapshot.crds) == [WEBSITES]
    assert len(snapshot.entries) == 2
    assert str(subject_of(snapshot)) == "hooks/sidecar"
    assert snapshot.service is not None and snapshot.endpoints is not None


def test_a_crd_without_a_conversion_webhook_is_refused_naming_its_strategy(
    cluster: InMemoryCluster,
) -> None:
    with pytest.raises(PreflightError, match=r"plain.example.com has no conversion webhook"):
        discover(cluster, Selection(crds=("plain.example.com",)))
    with pytest.raises(PreflightError, match=r"no CustomResourceDefinition named 'nope.io'"):
        discover(cluster, Selection(crds=("nope.io",)))


def test_callers_of_two_services_are_refused_before_any_change(cluster: InMemoryCluster) -> None:
    with pytest.raises(PreflightError, match="different Services"):
        discover(cluster, Selection(service="hooks/sidecar", crds=("gadgets.other.example.com",)))
    assert cluster.writes == []


def test_a_personal_redirect_leaves_conversions_in_the_cluster_and_says_so(
    cluster: InMemoryCluster,
) -> None:
    snapshot = discover(cluster, Selection(service="hooks/sidecar"), whole_service=False)

    assert snapshot.crds == {}
    assert snapshot.kept_conversions == [WEBSITES]
    lines = callers.caller_lines(snapshot, callers.Treatment(scope="namespaces dev"))
    assert lines[-1] == (
        f"CustomResourceDefinition {WEBSITES}, conversion → stays with the in-cluster "
        "Service (a conversion cannot be scoped to a person)"
    )
    with pytest.raises(PreflightError, match="a conversion cannot be scoped to a person"):
        discover(cluster, Selection(crds=(WEBSITES,)), whole_service=False)


def test_every_caller_is_listed_with_where_its_calls_go(cluster: InMemoryCluster) -> None:
    snapshot = discover(cluster, Selection(service="hooks/sidecar"))

    assert callers.heading(snapshot) == (
        "callers of Service hooks/sidecar:443, and where their calls go during the session:"
    )
    assert callers.caller_lines(snapshot, callers.Treatment()) == [
        "MutatingWebhookConfiguration sidecar-mutate, entry sidecar-mutate.example.com → "
        "this machine (our CA appended; failurePolicy Ignore, timeoutSeconds 5)",
        "ValidatingWebhookConfiguration sidecar-validate, entry sidecar-validate.example.com "
        "→ this machine (our CA appended; failurePolicy Ignore, timeoutSeconds 5)",
        f"CustomResourceDefinition {WEBSITES}, conversion between v1, v2 → "
        + callers.CONVERSION_ROUTE,
    ]


def test_the_laptop_away_warning_names_the_crds(cluster: InMemoryCluster) -> None:
    warnings = preflight_warnings(discover(cluster, Selection(service="hooks/sidecar")))

    [conversion] = [w for w in warnings if "conversion webhook" in w]
    assert WEBSITES in conversion and "no failurePolicy and no timeout" in conversion
    assert "`webhook-dev down` from any shell ends it" in conversion


# --- the journaled change and its exact restore ---------------------------------------------


def test_up_appends_our_ca_to_the_conversion_bundle_before_the_service_changes(
    cluster: InMemoryCluster,
) -> None:
    plan = journaled(build_plan(discover(cluster, Selection(service="hooks/sidecar")), TARGET))
    seen: list[bytes] = []

    def on_step(step: str) -> None:
        if step == "Service/sidecar":
            seen.append(conversion_bundle(cluster))

    apply_plan(cluster, plan, on_step)

    assert cluster.writes.index(f"PUT {CRD}") < cluster.writes.index("PUT Service/sidecar")
    [bundle] = seen
    assert THEIR_CA in bundle and OUR_CA in bundle  # appended, not replaced
    assert not any("gadgets" in write for write in cluster.writes)


def test_down_restores_the_crd_byte_for_byte_after_the_service(cluster: InMemoryCluster) -> None:
    before = cluster.content()
    plan = redirect(cluster, Selection(service="hooks/sidecar"))

    report = restore_plan(cluster, plan, lambda step: None)

    assert cluster.content() == before
    assert cluster.writes.index(f"PUT {CRD}") > cluster.writes.index("PUT Service/sidecar")
    assert report.clean
    assert (
        f"CustomResourceDefinition {WEBSITES} spec.conversion.webhook.clientConfig.caBundle"
        in report.restored
    )


def test_down_twice_leaves_the_crd_alone_the_second_time(cluster: InMemoryCluster) -> None:
    before = cluster.content()
    plan = redirect(cluster, Selection(crds=(WEBSITES,)))
    restore_plan(cluster, plan, lambda step: None)
    cluster.writes.clear()

    second = restore_plan(cluster, plan, lambda step: None)

    assert cluster.writes == [] and second.clean
    assert cluster.content() == before


def test_a_crd_without_a_bundle_gets_the_field_removed_again(cluster: InMemoryCluster) -> None:
    def no_bundle(obj: Json) -> None:
        del obj["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"]

    cluster.edit(CRD, no_bundle)
    before = cluster.content()
    plan = redirect(cluster, Selection(crds=(WEBSITES,)))
    assert conversion_bundle(cluster) == OUR_CA

    restore_plan(cluster, plan, lambda step: None)

    assert cluster.content() == before


def test_a_cainjector_rewrite_gets_our_ca_again_and_down_keeps_theirs(
    cluster: InMemoryCluster,
) -> None:
    plan = redirect(cluster, Selection(service="hooks/sidecar"))
    rotated = certs.new_ca("their rotated CA").cert_pem

    def inject(obj: Json) -> None:
        client_config = obj["spec"]["conversion"]["webhook"]["clientConfig"]
        client_config["caBundle"] = base64.b64encode(rotated).decode()

    cluster.edit(CRD, inject)

    assert [str(ref) for ref in reappend_ca(cluster, plan)] == [
        f"CustomResourceDefinition {WEBSITES}"
    ]
    assert conversion_bundle(cluster).startswith(rotated) and OUR_CA in conversion_bundle(cluster)
    assert reappend_ca(cluster, plan) == []  # nothing to do until the next rewrite

    report = restore_plan(cluster, plan, lambda step: None)

    assert conversion_bundle(cluster) == rotated  # the injector's bundle, without ours
    assert report.clean


def test_a_third_partys_change_to_a_url_conversion_is_reported_not_overwritten(
    cluster: InMemoryCluster,
) -> None:
    before = copy.deepcopy(cluster.content()["CustomResourceDefinition/remotes.example.com"])
    plan = redirect(cluster, Selection(crds=("remotes.example.com",)))
    name = "CustomResourceDefinition/remotes.example.com"
    config = cluster.content()[name]["spec"]["conversion"]["webhook"]["clientConfig"]
    assert config["url"] == "https://10.77.0.1:31000/convert?x=1"  # the tunnel, same path

    def theirs(obj: Json) -> None:
        obj["spec"]["conversion"]["webhook"]["clientConfig"]["url"] = "https://v2.example.com/c"

    cluster.edit(name, theirs)

    report = restore_plan(cluster, plan, lambda step: None)

    now = cluster.content()[name]
    assert now["spec"]["conversion"]["webhook"]["clientConfig"]["url"] == "https://v2.example.com/c"
    [conflict] = report.conflicts
    assert "spec.conversion.webhook.clientConfig.url" in conflict and "left as it is" in conflict
    # The field we appended to is restored all the same.
    assert "caBundle" not in now["spec"]["conversion"]["webhook"]["clientConfig"]
    assert "caBundle" not in before["spec"]["conversion"]["webhook"]["clientConfig"]


def test_a_url_conversion_alone_needs_no_service_and_its_host_is_in_the_certificate(
    cluster: InMemoryCluster,
) -> None:
    snapshot = discover(cluster, Selection(crds=("remotes.example.com",)))

    assert snapshot.entries == [] and snapshot.service is None
    assert url_hosts(snapshot) == ["converter.example.com"]
    assert str(subject_of(snapshot)) == "default/remotes.example.com"
    plan = build_plan(snapshot, TARGET)
    assert {change.ref.kind for change in plan.changes} == {"CustomResourceDefinition"}
    assert plan.creates == []


class NoCrdListing(InMemoryCluster):
    """A user with rights on webhooks and the Service's namespace, none on CRDs."""

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Json:
        if method == "GET" and path == CRD_COLLECTION:
            raise ClusterError(f"GET {path}: customresourcedefinitions is forbidden")
        return super().request(method, path, body, **kwargs)


def test_without_the_right_to_list_crds_the_redirect_goes_on_with_a_warning() -> None:
    cluster = NoCrdListing([*BEFORE, WEBSITES_CRD])

    snapshot = discover(cluster, Selection(service="hooks/sidecar"))

    assert snapshot.crds == {} and len(snapshot.entries) == 2
    [warning] = [w for w in preflight_warnings(snapshot) if "CustomResourceDefinitions" in w]
    assert warning.startswith("cannot list CustomResourceDefinitions (GET ")
    assert "name it with --crd" in warning
    with pytest.raises(ClusterError, match="forbidden"):
        discover(cluster, Selection(crds=(WEBSITES,)))
