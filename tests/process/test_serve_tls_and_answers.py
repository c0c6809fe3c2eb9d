"""``webhook-dev serve`` answers real AdmissionReviews over TLS verified like the apiserver."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import jsonpatch
import pytest

from tests.conftest import Served
from tests.reviews import pod, request_review


def test_serve_injects_the_sidecar_over_verified_tls_and_prints_one_line(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    served = serve(
        "sample_webhook.sidecar_injector", "--port", "0", "--record", str(record), "--no-reload"
    )
    review = request_review(pod("web"), uid="uid-1")
    answer = served.review(review)
    response = answer["response"]
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert response["uid"] == "uid-1" and response["allowed"] is True
    patched = jsonpatch.apply_patch(
        review["request"]["object"], json.loads(base64.b64decode(response["patch"]))
    )
    assert [c["name"] for c in patched["spec"]["containers"]] == ["app", "nginx-sidecar"]
    line = served.wait_for(r"Pod default/web\s+CREATE\s+allowed\s+3 ops\s+[\d.]+ ms")
    assert "[gen 1]" in line
    recorded = [json.loads(text) for text in record.read_text().splitlines()]
    assert len(recorded) == 1 and recorded[0]["version"] == 1
    assert recorded[0]["request"]["request"]["uid"] == "uid-1"
    assert recorded[0]["response"]["response"]["patch"] == response["patch"]
    assert record.stat().st_mode & 0o777 == 0o600


def test_serve_answers_v1beta1_in_v1beta1_and_verifies_as_localhost(
    serve: Callable[..., Served],
) -> None:
    served = serve("sample_webhook.sidecar_injector", "--port", "0", "--no-record", "--no-reload")
    answer = served.review(request_review(version="admission.k8s.io/v1beta1"), host="localhost")
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"


def test_serve_certificate_is_refused_by_a_client_that_does_not_trust_the_local_ca(
    serve: Callable[..., Served],
) -> None:
    served = serve("sample_webhook.sidecar_injector", "--port", "0", "--no-record", "--no-reload")
    import http.client

    connection = http.client.HTTPSConnection(
        "127.0.0.1", served.port, context=ssl.create_default_context(), timeout=30
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("POST", "/mutate", body=b"{}")
    connection.close()


def test_serve_validating_sample_denies_with_a_clear_message(
    serve: Callable[..., Served],
) -> None:
    served = serve("sample_webhook.require_limits", "--port", "0", "--no-record", "--no-reload")
    answer = served.review(request_review(), path="/validate?timeout=30s")
    assert answer["response"]["allowed"] is False
    assert "container 'app' has no resources.limits.cpu" in answer["response"]["status"]["message"]
    served.wait_for(r"Pod default/web-0\s+CREATE\s+denied \(container 'app'")


def test_serve_records_secrets_redacted_by_default(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    served = serve(
        "sample_webhook.sidecar_injector", "--port", "0", "--record", str(record), "--no-reload"
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"password": "aHVudGVyMg=="},
    }
    served.review(request_review(secret, kind="Secret"))
    served.wait_for(r"Secret default/db")
    text = record.read_text()
    assert "aHVudGVyMg==" not in text and "webhook-dev:redacted:" in text


def test_serve_refuses_a_taken_port_with_one_clear_line(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    from tests.conftest import run_webhook_dev

    served = serve("sample_webhook.sidecar_injector", "--port", "0", "--no-record", "--no-reload")
    result = run_webhook_dev(
        "serve",
        "sample_webhook.sidecar_injector",
        "--port",
        str(served.port),
        "--no-record",
        "--no-reload",
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{served.port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_exits_2_on_an_app_module_that_does_not_exist(
    tmp_path: Path, state_dir: Path
) -> None:
    from tests.conftest import run_webhook_dev

    result = run_webhook_dev("serve", "no_such_module", "--port", "0", "--no-record", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot find module 'no_such_module'" in result.stderr
    assert "Traceback" not in result.stderr
