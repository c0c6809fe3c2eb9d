"""What the inspector shows for an exchange: list row, flags, decoded patch, side-by-side diff."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.reviews import conversion_review, pod, request_review, website
from webhook_dev.inspector import views
from webhook_dev.reviews import conversion
from webhook_dev.reviews.admission import Flag, build_response, parse_request
from webhook_dev.reviews.exchange import Exchange

PATCH = [
    {"op": "add", "path": "/metadata/labels", "value": {"team": "a"}},
    {"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:1.36"},
]


def exchange(
    review: dict[str, Any] | None = None,
    *,
    answer: dict[str, Any] | None = None,
    path: str = "/mutate?timeout=10s",
    **fields: Any,
) -> Exchange:
    review = review or request_review(pod("web-0"))
    review["request"]["userInfo"] = {"username": "alice@example.com"}
    if answer is None:
        answer = build_response(parse_request(review), allowed=True, patch=PATCH)
    return Exchange(
        id="e1",
        started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        path=path,
        http_status=fields.pop("http_status", 200),
        request_review=review,
        response_review=answer,
        duration_ms=fields.pop("duration_ms", 4.2),
        **fields,
    )


def test_a_row_names_the_object_the_user_and_the_patch_size() -> None:
    row = views.summary(exchange())
    assert row["kind"] == "Pod"
    assert row["name"] == "default/web-0"
    assert row["operation"] == "CREATE"
    assert row["user"] == "alice@example.com"
    assert row["result"] == "allowed"
    assert row["patch_ops"] == 2
    assert row["flags"] == []


def test_a_denial_shows_as_denied_with_its_message() -> None:
    review = request_review()
    answer = build_response(parse_request(review), allowed=False, message="no limits", code=403)
    row = views.summary(exchange(review, answer=answer))
    assert row["result"] == "denied"
    assert row["message"] == "no limits"
    assert row["patch_ops"] is None


def test_a_call_over_80_percent_of_its_timeout_is_flagged_slow() -> None:
    fast = exchange(path="/mutate?timeout=2s", duration_ms=1500)
    slow = exchange(path="/mutate?timeout=2s", duration_ms=1700)
    assert views.summary(fast)["flags"] == []
    assert [flag["label"] for flag in views.summary(slow)["flags"]] == ["slow"]


def test_without_a_timeout_parameter_the_apiserver_default_of_10s_counts() -> None:
    assert not views.is_slow(exchange(path="/mutate", duration_ms=7900))
    assert views.is_slow(exchange(path="/mutate", duration_ms=8100))


def test_a_handler_traceback_is_flagged_as_a_handler_error_with_its_last_line() -> None:
    crashed = exchange(
        answer={},
        http_status=500,
        error="Traceback (most recent call last):\n  ...\nKeyError: 'spec'\n",
        flags=[Flag("http-status", "HTTP 500: the apiserver fails the call")],
    )
    crashed.response_review = None
    row = views.summary(crashed)
    assert row["result"] == "error"
    assert row["flags"] == [
        {"code": "handler-error", "label": "handler error", "message": "KeyError: 'spec'"}
    ]


def test_an_answer_the_apiserver_would_reject_is_flagged_invalid() -> None:
    flagged = exchange(flags=[Flag("uid-mismatch", "uid 'x' does not echo '3f1c-uid'")])
    (flag,) = views.summary(flagged)["flags"]
    assert flag["label"] == "invalid response"
    assert "does not echo" in flag["message"]


def test_a_body_that_is_not_a_review_is_a_bad_request() -> None:
    refused = Exchange(id="e2", started=datetime.now(UTC), path="/mutate", http_status=400)
    refused.error = "request body is not JSON"
    row = views.summary(refused)
    assert row["result"] == "bad request"
    assert row["message"] == "request body is not JSON"
    assert views.detail(refused)["diff"] is None


def test_the_detail_decodes_the_patch_and_shows_the_object_after_it() -> None:
    shown = views.detail(exchange())
    assert shown["patch"] == PATCH
    assert shown["object"]["spec"]["containers"][0]["image"] == "busybox"
    assert shown["after"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert shown["after"]["metadata"]["labels"] == {"team": "a"}


def test_the_diff_pairs_a_changed_line_and_marks_added_lines_on_the_right() -> None:
    rows = views.detail(exchange())["diff"]
    changed = [row for row in rows if row["kind"] == "changed"]
    added = [row for row in rows if row["kind"] == "added"]
    assert any('"busybox"' in row["left"] and '"busybox:1.36"' in row["right"] for row in changed)
    assert any('"team": "a"' in row["right"] for row in added)
    assert all(row["left"] is None for row in added)
    assert {row["kind"] for row in rows} <= {"same", "changed", "added", "removed"}


def test_an_update_shows_its_old_object() -> None:
    review = request_review(pod("web-0"), operation="UPDATE")
    review["request"]["oldObject"] = pod("web-0", labels={"v": "1"})
    assert views.detail(exchange(review))["old_object"]["metadata"]["labels"] == {"v": "1"}


def test_a_patch_that_does_not_apply_is_explained_and_shows_no_diff() -> None:
    review = request_review()
    answer = build_response(
        parse_request(review),
        allowed=True,
        patch=[{"op": "replace", "path": "/spec/nothing/here", "value": 1}],
    )
    shown = views.detail(
        exchange(review, answer=answer, flags=[Flag("patch-does-not-apply", "cannot apply")])
    )
    assert shown["patch"] == [{"op": "replace", "path": "/spec/nothing/here", "value": 1}]
    assert shown["diff"] is None
    assert shown["patch_problems"] == ["cannot apply"]


def test_side_by_side_marks_removed_lines_on_the_left() -> None:
    rows = views.side_by_side({"a": 1, "b": 2}, {"a": 1})
    removed = [row for row in rows if row["kind"] in ("removed", "changed")]
    assert removed and all(row["left"] is not None for row in removed)
    assert any('"b": 2' in (row["left"] or "") for row in removed)


def test_an_update_shows_what_it_changes_from_the_old_object() -> None:
    review = request_review(pod("web-0", labels={"v": "2"}), operation="UPDATE")
    review["request"]["oldObject"] = pod("web-0", labels={"v": "1"})
    rows = views.detail(exchange(review))["update_diff"]
    assert any(
        row["kind"] == "changed" and '"v": "1"' in row["left"] and '"v": "2"' in row["right"]
        for row in rows
    )


def test_a_conversion_pane_shows_each_object_before_and_after_with_the_result() -> None:
    review = conversion_review(website("a"), website("b"))
    request = conversion.parse_request(review)
    converted = [
        {**obj, "apiVersion": request.desired_api_version, "spec": {"address": "example.com:8080"}}
        for obj in request.objects
    ]
    exchange = Exchange(
        id="c1",
        started=datetime.now(UTC),
        path="/convert?timeout=30s",
        http_status=200,
        request_review=review,
        response_review=conversion.build_response(request, converted),
    )
    shown = views.detail(exchange)
    assert shown["summary"]["review"] == "conversion"
    assert shown["summary"]["operation"] == "CONVERT" and shown["summary"]["result"] == "converted"
    pane = shown["conversion"]
    assert pane["desired_api_version"] == "samples.webhook-dev.io/v2"
    assert pane["succeeded"] is True
    assert [o["name"] for o in pane["objects"]] == ["websites/a", "websites/b"]
    added = [row["right"] for row in pane["objects"][1]["diff"] if row["kind"] != "same"]
    assert any('"address": "example.com:8080"' in (line or "") for line in added)
    failed = Exchange(
        id="c2",
        started=datetime.now(UTC),
        path="/convert",
        http_status=200,
        request_review=review,
        response_review=conversion.build_response(request, None, message="no v3"),
    )
    pane = views.detail(failed)["conversion"]
    assert pane["succeeded"] is False and pane["message"] == "no v3"
    assert all(o["after"] is None and o["diff"] is None for o in pane["objects"])
