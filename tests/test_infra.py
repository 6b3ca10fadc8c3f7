"""Deployment artefacts checked offline against the code: Terraform (parsed HCL), the Lambda
package, the worker Dockerfile, and localstack-compose.yml. (`checkov` runs in scripts/test.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from tests.conftest import ROOT

TERRAFORM = ROOT / "infra" / "terraform"
SETTINGS_SOURCE = (ROOT / "shared" / "settings.py").read_text()
SETTING_NAMES = set(re.findall(r'"((?:SENDPY_[A-Z0-9_]+)|DATABASE_URL|AWS_REGION)"', SETTINGS_SOURCE))
# What only the lag function reads (functions/lag_publisher.py) and the worker's log level.
OTHER_NAMES = {"SENDPY_ECS_CLUSTER", "SENDPY_ECS_SERVICE", "SENDPY_SCALE_MIN", "SENDPY_SCALE_MAX",
               "SENDPY_SCALE_PER_WORKER_LAG", "SENDPY_LOG_LEVEL"}
# Settings whose local default would be wrong in AWS: Terraform must set every one of them.
REQUIRED_IN_AWS = {
    "DATABASE_URL", "SENDPY_KAFKA_BOOTSTRAP", "SENDPY_KAFKA_SECURITY", "SENDPY_KAFKA_REGION",
    "SENDPY_KAFKA_REPLICATION", "SENDPY_DELIVERY_PARTITIONS", "SENDPY_S3_BUCKET_UPLOADS", "SENDPY_KEY_PROVIDER",
    "SENDPY_KMS_KEY_ID", "SENDPY_SIGNING_KEY", "SENDPY_PUBLIC_BASE_URL",
}


def _clean(value: Any) -> Any:
    """python-hcl2 keeps the quotes of keys and strings and marks blocks; drop both."""
    if isinstance(value, dict):
        return {unquote(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return unquote(value)


def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        parsed: dict[str, Any] = _clean(hcl2.load(handle))
        return parsed


def all_tf() -> dict[Path, dict[str, Any]]:
    return {path: parse(path) for path in sorted(TERRAFORM.rglob("*.tf"))}


def blocks(kind: str, type_name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(name, body) of every `kind "type" "name"` block (resource/data), across all files."""
    found = []
    for parsed in all_tf().values():
        for entry in parsed.get(kind, []):
            for found_type, named in entry.items():
                if type_name is None or found_type == type_name:
                    found.extend(named.items())
    return found


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def test_the_setting_names_are_found() -> None:
    assert {"DATABASE_URL", "SENDPY_KAFKA_BOOTSTRAP", "SENDPY_KMS_KEY_ID"} <= SETTING_NAMES


def test_every_variable_is_described_and_providers_are_pinned() -> None:
    for path, parsed in all_tf().items():
        for entry in parsed.get("variable", []):
            for name, body in entry.items():
                assert body.get("description"), f"{path}: variable {name} has no description"
                assert body.get("type"), f"{path}: variable {name} has no type"
        for entry in parsed.get("terraform", []):
            for providers in entry.get("required_providers", []):
                for name, spec in providers.items():
                    assert spec.get("version"), f"{path}: provider {name} is not pinned"
    example = parse(TERRAFORM / "environments" / "example" / "versions.tf")
    versions = example["terraform"][0]["required_providers"][0]
    assert all(unquote(spec["version"]).startswith("= ") for spec in versions.values())


def test_no_account_ids_or_regions_are_hard_coded() -> None:
    for path in TERRAFORM.rglob("*.tf"):
        text = path.read_text()
        assert not re.search(r"\b\d{12}\b", text), f"{path} names an account id"
        assert not re.search(r'"(us|eu|ap|sa|ca|me|af)-[a-z]+-\d"', text), f"{path} names a region"


def test_lambda_handlers_exist_in_the_code() -> None:
    handlers = [unquote(body["handler"]) for _, body in blocks("resource", "aws_lambda_function")]
    assert sorted(handlers) == ["functions.lag_publisher.handler", "functions.lambda_handler.handler"]
    for handler in handlers:
        module, _, attribute = handler.rpartition(".")
        result = subprocess.run([sys.executable, "-c", f"import {module}; assert callable({module}.{attribute})"],
                                cwd=ROOT, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


def _environment_keys() -> dict[str, set[str]]:
    main = (TERRAFORM / "environments" / "example" / "main.tf").read_text()
    maps = {}
    for name in ("app_environment", "worker_environment", "api_environment"):
        body = re.search(rf"{name} = (?:merge\(local\.app_environment, )?\{{(.*?)\n  \}}", main, re.S)
        assert body, name
        maps[name] = set(re.findall(r"^\s*([A-Z][A-Z0-9_]+)\s*=", body.group(1), re.M))
    maps["worker_environment"] |= maps["app_environment"]
    maps["api_environment"] |= maps["app_environment"]
    workers = (TERRAFORM / "modules" / "workers" / "main.tf").read_text()
    lag = re.search(r"merge\(var\.environment, \{(.*?)\}\)", workers, re.S)
    assert lag
    maps["lag_environment"] = maps["worker_environment"] | set(re.findall(r"^\s*([A-Z][A-Z0-9_]+)\s*=", lag.group(1), re.M))
    return maps


def test_terraform_sets_every_setting_the_app_needs_and_no_unknown_ones() -> None:
    environments = _environment_keys()
    del environments["app_environment"]  # the shared base; each process's map adds its database
    for name, keys in environments.items():
        missing = REQUIRED_IN_AWS - keys
        assert not missing, f"{name} lacks {sorted(missing)}"
        unknown = keys - SETTING_NAMES - OTHER_NAMES
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def _policy_documents() -> list[tuple[str, dict[str, Any]]]:
    return blocks("data", "aws_iam_policy_document")


def _actions(document: dict[str, Any]) -> set[str]:
    """Actions the document allows (a Deny with a wildcard only narrows, e.g. TLS-only buckets)."""
    actions = set()
    for statement in document.get("statement", []):
        if statement.get("effect", "Allow") == "Allow":
            actions.update(unquote(a) for a in statement.get("actions", []))
    return actions


def test_iam_has_no_wildcard_actions() -> None:
    for name, document in _policy_documents():
        if name.endswith("_key"):
            continue  # KMS key policies: the account-root statement is AWS's default key policy
        for action in _actions(document):
            assert "*" not in action, f"policy {name} grants the wildcard action {action}"


# What the code calls (method names found in the source) → the IAM action each needs.
CALLS = {
    ("shared/crypto.py", "generate_data_key"): "kms:GenerateDataKey",
    ("shared/crypto.py", "decrypt"): "kms:Decrypt",
    ("shared/storage.py", "generate_presigned_post"): "s3:PutObject",
    ("shared/storage.py", "head_object"): "s3:GetObject",
    ("shared/storage.py", "get_object"): "s3:GetObject",
    ("shared/storage.py", "delete_object"): "s3:DeleteObject",
    ("shared/broker.py", "AIOKafkaProducer"): "kafka-cluster:WriteData",
    ("shared/broker.py", "enable_idempotence=True"): "kafka-cluster:WriteDataIdempotently",
    ("shared/broker.py", "AIOKafkaConsumer"): "kafka-cluster:ReadData",
    ("shared/broker.py", "create_topics"): "kafka-cluster:CreateTopic",
    ("shared/broker.py", "list_consumer_group_offsets"): "kafka-cluster:DescribeGroup",
    ("shared/broker.py", '"group_id"'): "kafka-cluster:AlterGroup",
    ("shared/db.py", "generate_db_auth_token"): "rds-db:connect",
    ("functions/lag_publisher.py", "describe_services"): "ecs:DescribeServices",
    ("functions/lag_publisher.py", "update_service"): "ecs:UpdateService",
    ("functions/lag_publisher.py", "put_metric_data"): "cloudwatch:PutMetricData",
}


def test_iam_covers_what_the_code_calls() -> None:
    granted = set().union(*(_actions(document) for _, document in _policy_documents()))
    granted.add("kafka-cluster:Connect")  # implied by every Kafka client
    for (source, call), action in CALLS.items():
        assert call in (ROOT / source).read_text(), f"{source} no longer calls {call}: update this table"
        assert action in granted, f"{source} calls {call} but no policy grants {action}"
    assert "kafka-cluster:Connect" in _actions(dict(blocks("data", "aws_iam_policy_document"))["app"])


def test_lambda_package_imports_and_answers_an_api_gateway_event(tmp_path: Path) -> None:
    from sendpy.packaging import build

    package = build(tmp_path / "lambda.zip")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(unpacked)
        names = archive.namelist()
    assert "functions/lambda_handler.py" in names and "shared/settings.py" in names
    assert not any(name.startswith(("tests/", "sendpy/", "uvloop/")) for name in names)
    size = sum(path.stat().st_size for path in unpacked.rglob("*") if path.is_file())
    assert size < 250 * 1024 * 1024  # Lambda's unzipped limit
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": "/api/health", "rawQueryString": "",
        "headers": {"host": "example.execute-api.eu-central-1.amazonaws.com", "accept-language": "ru"},
        "requestContext": {"http": {"method": "GET", "path": "/api/health", "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.7", "userAgent": "test"},
                           "stage": "$default", "requestId": "r1", "accountId": "000000000000", "apiId": "a"},
        "isBase64Encoded": False,
    }
    missing = dict(event, rawPath="/v1/no-such-route",
                   requestContext={**event["requestContext"], "http": {**event["requestContext"]["http"],
                                                                        "path": "/v1/no-such-route"}})
    script = tmp_path / "invoke.py"
    script.write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(unpacked)!r})  # only the package: -I ignores site-packages' project\n"
        "from functions.lambda_handler import handler\n"
        "for event in json.loads(sys.argv[1]):\n"
        "    answer = handler(event, None)\n"
        "    print(json.dumps({'status': answer['statusCode'], 'body': answer['body']}))\n"
    )
    env = {"PATH": os.environ["PATH"], "AWS_REGION": "eu-central-1"}
    result = subprocess.run([sys.executable, "-I", str(script), json.dumps([event, missing])],
                            capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    health, not_found = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert health == {"status": 200, "body": '{"ok":true}'}
    assert not_found["status"] == 404 and "Не найдено" in json.loads(not_found["body"])["error"]["message"]


def test_worker_dockerfile_is_slim_pinned_non_root_with_a_health_check() -> None:
    text = (ROOT / "worker_image" / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(re.search(r":\d+\.\d+\.\d+-slim", base) for base in bases)
    assert re.search(r"^USER \d+", text, re.M)
    assert "HEALTHCHECK" in text and '"-m", "worker_image"' in text


def test_localstack_compose_is_pinned_and_matches_the_settings() -> None:
    compose = yaml.safe_load((ROOT / "localstack-compose.yml").read_text())
    services = compose["services"]
    assert {"localstack", "redpanda", "postgres", "mailpit", "api", "fanout", "sender"} <= set(services)
    for name, service in services.items():
        if "image" in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name} image is not pinned: {image}"
            assert re.search(r":v?\d+(\.\d+)+", image), f"{name} image has no version tag: {image}"
    assert services["localstack"]["image"] == "localstack/localstack:4.14.0"
    assert "--set=redpanda.auto_create_topics_enabled=false" in services["redpanda"]["command"]
    assert "8000:8000" in services["api"]["ports"]
    for name in ("api", "fanout", "sender"):
        env = services[name]["environment"]
        assert REQUIRED_IN_AWS - {"SENDPY_KAFKA_SECURITY", "SENDPY_KAFKA_REGION", "SENDPY_KAFKA_REPLICATION",
                                  "SENDPY_DELIVERY_PARTITIONS", "SENDPY_KEY_PROVIDER", "SENDPY_KMS_KEY_ID",
                                  "SENDPY_SIGNING_KEY"} <= set(env)
        assert set(env) - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= SETTING_NAMES | OTHER_NAMES | {"SENDPY_SERVE_WEB"}
    assert services["fanout"]["command"] == ["fanout"] and services["sender"]["command"] == ["sender"]
    # The API runs uvicorn from the worker image: it must be built with the server extra.
    assert services["api"]["build"]["args"]["EXTRAS"] == "[server]"
    assert "server" in __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]


async def test_msk_iam_options_and_token_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    from shared.broker import MskIamTokenProvider, client_options
    from shared.settings import load_settings

    monkeypatch.setenv("SENDPY_KAFKA_SECURITY", "iam")
    monkeypatch.setenv("SENDPY_KAFKA_BOOTSTRAP", "b-1.example:9098,b-2.example:9098")
    options = client_options(load_settings())
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "OAUTHBEARER"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["bootstrap_servers"] == ["b-1.example:9098", "b-2.example:9098"]
    # The signer needs AWS credentials; what is under test is that one token serves until near
    # its expiry, then a new one is asked for.
    import time

    calls = []

    def fake_token(region: str) -> tuple[str, int]:
        calls.append(region)
        return f"token-{len(calls)}", int((time.time() + 900) * 1000)

    monkeypatch.setattr(MSKAuthTokenProvider, "generate_auth_token", staticmethod(fake_token))
    provider = MskIamTokenProvider("eu-central-1")
    assert await provider.token() == "token-1"
    assert await provider.token() == "token-1"
    provider._expires_at = time.time() + 30  # within a minute of expiry: renewed
    assert await provider.token() == "token-2"
    assert calls == ["eu-central-1", "eu-central-1"]
