"""What shadow mode sweeps for a CRD, and the review it builds (production converts)."""

from __future__ import annotations

from typing import Any

from webhook_dev.redirect.conversion_shadow import converted_crd
from webhook_dev.reviews import conversion
from webhook_dev.serving.shadow import ShadowTarget

TARGET = ShadowTarget(key="k", entry="conversion of x", path="/convert", production=None)


def crd(strategy: str = "Webhook", **webhook: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "websites.samples.webhook-dev.io"},
        "spec": {
            "group": "samples.webhook-dev.io",
            "names": {"plural": "websites"},
            "versions": [
                {"name": "v1", "served": True, "storage": True},
                {"name": "v2", "served": True, "storage": False},
                {"name": "v3", "served": False, "storage": False},
            ],
            "conversion": {"strategy": strategy, "webhook": webhook},
        },
    }


def test_objects_are_read_in_the_storage_version_and_sent_to_every_other_served_one() -> None:
    found = converted_crd(crd(conversionReviewVersions=["v1beta1"]), TARGET)
    assert found is not None
    assert (found.storage, found.targets) == ("v1", ("v2",))
    assert found.review_version == "apiextensions.k8s.io/v1beta1"


def test_a_crd_without_a_webhook_has_nothing_to_compare() -> None:
    assert converted_crd(crd(strategy="None"), TARGET) is None


def test_the_review_is_the_apiservers_and_passes_the_door() -> None:
    obj = {"apiVersion": "samples.webhook-dev.io/v1", "kind": "Website", "metadata": {"name": "a"}}
    review = conversion.new_review([obj], "samples.webhook-dev.io/v2", uid="u-1")
    request = conversion.parse_request(review)
    assert request.desired_api_version == "samples.webhook-dev.io/v2"
    assert list(request.objects) == [obj]
