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
# Settings whose local default would be wrong in AWS: Terraform must set every one of them. (The
# unsubscribe signing key too, but as a secret: test_the_signing_key_is_a_secret_not_an_environment_variable.)
REQUIRED_IN_AWS = {
    "DATABASE_URL", "SENDPY_KAFKA_BOOTSTRAP", "SENDPY_KAFKA_SECURITY", "SENDPY_KAFKA_REGION",
    "SENDPY_KAFKA_REPLICATION", "SENDPY_DELIVERY_PARTITIONS", "SENDPY_S3_BUCKET_UPLOADS", "SENDPY_KEY_PROVIDER",
    "SENDPY_KMS_KEY_ID", "SENDPY_PUBLIC_BASE_URL",
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
    ("shared/unsubscribe.py", "get_secret_value"): "secretsmanager:GetSecretValue",
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


def _policy(name: str) -> dict[str, Any]:
    return dict(_policy_documents())[name]


def _statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    found = [statement for statement in document.get("statement", []) if statement.get("sid") == sid]
    assert len(found) == 1, f"no statement {sid}"
    return found[0]


def test_the_signing_key_is_a_secret_not_an_environment_variable() -> None:
    """The key that signs unsubscribe links is in Secrets Manager (encrypted with the platform
    key): ECS injects it into the workers (task definition `secrets`, as PGPASSWORD); the API
    function gets only the secret's ARN and may read that one secret; no environment map holds it."""
    main = (TERRAFORM / "environments" / "example" / "main.tf").read_text()
    environments = _environment_keys()
    for name, keys in environments.items():
        assert "SENDPY_SIGNING_KEY" not in keys, f"{name} puts the signing key in the environment"
    assert "SENDPY_SIGNING_KEY_SECRET_ARN" in environments["api_environment"]
    assert "SENDPY_SIGNING_KEY_SECRET_ARN" in SETTING_NAMES  # read by shared/settings.py
    example = modules()[(TERRAFORM / "environments" / "example").resolve()]
    # The generated key reaches only the secret's value.
    assert main.count("random_password.signing_key.result") == 1
    secret = example.resources["aws_secretsmanager_secret.signing_key"]
    assert secret["kms_key_id"] == "${module.data.platform_kms_key_arn}"
    version = example.resources["aws_secretsmanager_secret_version.signing_key"]
    assert version["secret_id"] == "${aws_secretsmanager_secret.signing_key.id}"
    assert version["secret_string"] == "${random_password.signing_key.result}"
    # Both consumers get the ARN from the version, so nothing starts before the secret has a value.
    assert example.locals["signing_key_secret_arn"] == "${aws_secretsmanager_secret_version.signing_key.arn}"
    assert "SENDPY_SIGNING_KEY_SECRET_ARN = local.signing_key_secret_arn" in example.locals["api_environment"]
    assert example.calls["workers"]["signing_key_secret_arn"] == "${local.signing_key_secret_arn}"

    # Lambda: that secret and nothing else; its key only through Secrets Manager.
    api = _policy("api")
    reads = _statement(api, "SigningKey")
    assert reads["actions"] == ["secretsmanager:GetSecretValue"]
    assert reads["resources"] == ["${aws_secretsmanager_secret.signing_key.arn}"]
    decrypt = _statement(api, "SigningKeyDecrypt")
    assert decrypt["actions"] == ["kms:Decrypt"] and decrypt["resources"] == ["${module.data.platform_kms_key_arn}"]
    assert decrypt["condition"][0]["variable"] == "kms:ViaService"
    assert all("secretsmanager:" not in action for action in _actions(_policy("app")))  # not the workers' task role

    # ECS: the execution role reads it (and the key's decrypt was already there for PGPASSWORD).
    workers = modules()[(TERRAFORM / "modules" / "workers").resolve()]
    execution = workers.resources["data.aws_iam_policy_document.execution"]
    statements = {statement["sid"]: statement for statement in execution["statement"]}
    assert statements["SigningKey"]["actions"] == ["secretsmanager:GetSecretValue"]
    assert statements["SigningKey"]["resources"] == ["${var.signing_key_secret_arn}"]
    assert statements["DecryptSecretAndImage"]["resources"] == ["${var.kms_key_arn}"]
    assert example.calls["workers"]["kms_key_arn"] == "${module.data.platform_kms_key_arn}"
    container = workers.resources["aws_ecs_task_definition.worker"]["container_definitions"]
    assert '{name = "SENDPY_SIGNING_KEY", valueFrom = var.signing_key_secret_arn}' in container


def test_the_api_function_reads_the_signing_key_from_its_secret_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from shared import unsubscribe
    from shared.settings import load_settings

    calls = []

    class FakeSecrets:
        def get_secret_value(self, SecretId: str) -> dict[str, str]:
            calls.append(SecretId)
            return {"SecretString": "k" * 48}

    monkeypatch.setattr(boto3, "client", lambda service, **kwargs: FakeSecrets() if service == "secretsmanager" else None)
    monkeypatch.delenv("SENDPY_SIGNING_KEY", raising=False)
    monkeypatch.setenv("SENDPY_SIGNING_KEY_SECRET_ARN", "arn:aws:secretsmanager:eu-central-1:1:secret:sendpy-signing-key")
    unsubscribe._secret_string.cache_clear()
    try:
        settings = load_settings()
        assert unsubscribe.signing_key(settings) == b"k" * 48
        assert unsubscribe.signing_key(settings) == b"k" * 48
        assert calls == ["arn:aws:secretsmanager:eu-central-1:1:secret:sendpy-signing-key"]  # cached
        monkeypatch.setenv("SENDPY_SIGNING_KEY", "from-the-environment")  # the local stack, ECS
        assert unsubscribe.signing_key(load_settings()) == b"from-the-environment"
        assert len(calls) == 1
    finally:
        unsubscribe._secret_string.cache_clear()


def test_the_api_answers_only_on_its_custom_domain_which_cloudfront_uses() -> None:
    """execute-api is disabled, so nothing may point at it: CloudFront's API origin is the custom
    domain (regional certificate, modern TLS), mapped to the $default stage."""
    api = modules()[(TERRAFORM / "modules" / "api").resolve()]
    assert api.resources["aws_apigatewayv2_api.http"]["disable_execute_api_endpoint"] is True
    domain = api.resources["aws_apigatewayv2_domain_name.api"]
    configuration = domain["domain_name_configuration"][0]
    assert configuration["endpoint_type"] == "REGIONAL" and configuration["security_policy"] == "TLS_1_2"
    assert configuration["certificate_arn"] == "${var.certificate_arn}"
    mapping = api.resources["aws_apigatewayv2_api_mapping.api"]
    assert mapping["domain_name"] == "${aws_apigatewayv2_domain_name.api.domain_name}"
    assert mapping["stage"] == "${aws_apigatewayv2_stage.default.id}" and "api_mapping_key" not in mapping
    # CloudFront's API origin follows back to the mapped custom domain, nothing else.
    cdn = modules()[(TERRAFORM / "modules" / "cdn").resolve()]
    origins = {o["origin_id"]: o for o in cdn.resources["aws_cloudfront_distribution.this"]["origin"]}
    assert [address for _, address, _ in _trace(origins["api"]["domain_name"], cdn)] == ["aws_apigatewayv2_api_mapping.api"]
    for path in TERRAFORM.rglob("*.tf"):
        assert not re.search(r"\.api_endpoint\b", path.read_text()), f"{path} uses the disabled execute-api endpoint"
    example = modules()[(TERRAFORM / "environments" / "example").resolve()]
    assert example.calls["api"]["domain_name"] == "${var.api_origin_domain}"


def test_cloudfront_sends_the_same_security_headers_as_the_app() -> None:
    from functions.security_headers import PREVIEW_CONTENT_SECURITY_POLICY, content_security_policy, headers
    from shared.settings import load_settings

    cdn = modules()[(TERRAFORM / "modules" / "cdn").resolve()]
    policies = {name: body["security_headers_config"][0]
                for name, body in cdn.of_type("aws_cloudfront_response_headers_policy")}
    assert set(policies) == {"security", "preview"}
    origins = ("https://b.s3.amazonaws.com", "https://b.s3.eu-central-1.amazonaws.com")
    template = cdn.locals["content_security_policy"]
    assert template.count('${join(" ", var.upload_origins)}') == 1
    assert template.replace('${join(" ", var.upload_origins)}', " ".join(origins)) == content_security_policy(origins)
    assert cdn.locals["preview_content_security_policy"] == PREVIEW_CONTENT_SECURITY_POLICY
    app = {kind: {name.decode(): value.decode() for name, value in pairs} for kind, pairs in headers(load_settings()).items()}
    for name, kind in (("security", "app"), ("preview", "preview")):
        config = policies[name]
        csp = config["content_security_policy"][0]
        assert csp["content_security_policy"] == f"${{local.{'' if name == 'security' else 'preview_'}content_security_policy}}"
        assert config["frame_options"][0]["frame_option"] == app[kind]["x-frame-options"]
        assert config["referrer_policy"][0]["referrer_policy"] == app[kind]["referrer-policy"]
        assert app[kind]["x-content-type-options"] == "nosniff" and config["content_type_options"]
        assert all(block[0]["override"] is True for key, block in config.items() if isinstance(block, list))
    behaviors = cdn.resources["aws_cloudfront_distribution.this"]
    assert behaviors["default_cache_behavior"][0]["response_headers_policy_id"] == \
        "${aws_cloudfront_response_headers_policy.security.id}"
    ordered = {b["path_pattern"]: b for b in behaviors.get("ordered_cache_behavior", [])}
    assert ordered["/preview.html"]["response_headers_policy_id"] == "${aws_cloudfront_response_headers_policy.preview.id}"
    assert ordered["/preview.html"]["target_origin_id"] == "site"
    api_paths = behaviors["dynamic"][0]["ordered_cache_behavior"]
    assert api_paths["content"][0]["response_headers_policy_id"] == "${aws_cloudfront_response_headers_policy.security.id}"


def test_the_upload_origin_in_the_policy_is_where_presigned_posts_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """connect-src allows the uploads bucket, exactly where boto3's presigned POST sends the
    browser: in AWS (Terraform's origins, and the app's own) and with a local endpoint (moto)."""
    from urllib.parse import urlsplit

    import boto3
    from botocore.config import Config

    from functions.security_headers import upload_origins
    from shared.settings import load_settings

    def presigned_origin(endpoint: str | None, region: str) -> str:
        client = boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id="x",
                              aws_secret_access_key="y", config=Config(signature_version="s3v4"))
        url = urlsplit(client.generate_presigned_post(Bucket="sendpy-prod-uploads", Key="uploads/k")["url"])
        return f"{url.scheme}://{url.netloc}"

    monkeypatch.delenv("SENDPY_S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("SENDPY_S3_BUCKET_UPLOADS", "sendpy-prod-uploads")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    in_aws = upload_origins(load_settings())
    assert presigned_origin(None, "eu-central-1") in in_aws
    example = modules()[(TERRAFORM / "environments" / "example").resolve()]
    rendered = tuple(origin.replace("${module.storage.uploads_bucket}", "sendpy-prod-uploads")
                     .replace("${var.region}", "eu-central-1") for origin in example.locals["upload_origins"])
    assert rendered == in_aws
    assert example.calls["cdn"]["upload_origins"] == "${local.upload_origins}"
    monkeypatch.setenv("SENDPY_S3_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert upload_origins(load_settings()) == (presigned_origin("http://127.0.0.1:4566", "eu-central-1"),)


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
    assert {"localstack", "redpanda", "postgres", "mailpit", "api", "fanout", "sender", "bounce"} <= set(services)
    for name, service in services.items():
        if "image" in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name} image is not pinned: {image}"
            assert re.search(r":v?\d+(\.\d+)+", image), f"{name} image has no version tag: {image}"
    assert services["localstack"]["image"] == "localstack/localstack:4.14.0"
    assert "--set=redpanda.auto_create_topics_enabled=false" in services["redpanda"]["command"]
    assert "8000:8000" in services["api"]["ports"]
    for name in ("api", "fanout", "sender", "bounce"):
        env = services[name]["environment"]
        assert REQUIRED_IN_AWS - {"SENDPY_KAFKA_SECURITY", "SENDPY_KAFKA_REGION", "SENDPY_KAFKA_REPLICATION",
                                  "SENDPY_DELIVERY_PARTITIONS", "SENDPY_KEY_PROVIDER", "SENDPY_KMS_KEY_ID",
                                  "SENDPY_SIGNING_KEY"} <= set(env)
        assert set(env) - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= SETTING_NAMES | OTHER_NAMES | {"SENDPY_SERVE_WEB"}
    assert services["fanout"]["command"] == ["fanout"] and services["sender"]["command"] == ["sender"]
    assert services["bounce"]["command"] == ["bounce"]
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


# ---- What `terraform validate`, a first `plan` and a first `apply` on a new account refuse ----
# The HCL is read module by module (a directory is a module) so that values can be followed
# across module calls: var.X → the argument every caller passes, module.M.O → that output's
# value, local.X → its expression.


class Module:
    def __init__(self, directory: Path, files: list[dict[str, Any]]) -> None:
        self.path = directory
        self.name = str(directory.relative_to(TERRAFORM))
        self.resources: dict[str, dict[str, Any]] = {}  # "type.name" → body, also "data.type.name"
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.calls: dict[str, dict[str, Any]] = {}  # module "name" {...}
        for parsed in files:
            for kind, prefix in (("resource", ""), ("data", "data.")):
                for entry in parsed.get(kind, []):
                    for type_name, named in entry.items():
                        for name, body in named.items():
                            self.resources[f"{prefix}{type_name}.{name}"] = body
            for kind, target in (("variable", self.variables), ("output", self.outputs), ("module", self.calls)):
                for entry in parsed.get(kind, []):
                    target.update(entry)
            for entry in parsed.get("locals", []):
                self.locals.update({k: v for k, v in entry.items() if not k.startswith("__")})

    def of_type(self, type_name: str) -> list[tuple[str, dict[str, Any]]]:
        return [(address.split(".", 1)[1], body) for address, body in self.resources.items()
                if address.split(".", 1)[0] == type_name]

    def callee(self, call: str) -> Module:
        return modules()[(self.path / unquote(self.calls[call]["source"])).resolve()]

    def callers(self) -> list[tuple[Module, str, dict[str, Any]]]:
        return [(module, call, body) for module in modules().values() for call, body in module.calls.items()
                if module.callee(call) is self]


_MODULES: dict[Path, Module] = {}


def modules() -> dict[Path, Module]:
    if not _MODULES:
        by_directory: dict[Path, list[dict[str, Any]]] = {}
        for path, parsed in all_tf().items():
            by_directory.setdefault(path.parent.resolve(), []).append(parsed)
        _MODULES.update({directory: Module(directory, files) for directory, files in by_directory.items()})
    return _MODULES


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


# Security-group descriptions: AWS's character set for VPC groups and for rule descriptions
# (EC2 CreateSecurityGroup / AuthorizeSecurityGroupIngress; the provider checks only rules, at validate).
SECURITY_GROUP_TEXT = re.compile(r"^[0-9A-Za-z_ .:/()#,@\[\]+=&;{}!$*-]*$")
RULE_TYPES = {"aws_security_group_rule", "aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"}


def _security_group_texts(type_name: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    texts: list[tuple[str, Any]] = []
    if type_name in RULE_TYPES:
        texts.append(("description", body.get("description")))
    if type_name in {"aws_security_group", "aws_default_security_group"}:
        texts.append(("description", body.get("description")))
        dynamic = {name: block for entry in body.get("dynamic", []) for name, block in entry.items()}
        for direction in ("ingress", "egress"):
            for rule in body.get(direction) or []:
                texts.append((f"{direction}.description", rule.get("description")))
            for content in dynamic.get(direction, {}).get("content", []):
                texts.append((f"dynamic.{direction}.description", content.get("description")))
    return [(field, text) for field, text in texts if text is not None]


def test_security_group_and_rule_descriptions_use_only_what_aws_accepts() -> None:
    bad = []
    for module in modules().values():
        for address, body in module.resources.items():
            for field, text in _security_group_texts(address.split(".")[0], body):
                # ${var.name} and the like: the name variable is validated to [a-z0-9-].
                literal = re.sub(r"\$\{[^{}]*\}", "", str(text))
                refused = sorted({char for char in literal if not SECURITY_GROUP_TEXT.match(char)})
                if refused or len(str(text)) > 255:
                    bad.append(f"{module.name}: {address}.{field} = {text!r} has {refused} "
                               f"(AWS accepts only {SECURITY_GROUP_TEXT.pattern}, at most 255)")
    assert not bad, "\n".join(bad)


# for_each keys and count must be known at plan time, or the first plan on a new account fails
# ("Invalid for_each argument"). The heuristic, sound for this configuration's idioms:
# - a map literal `{ key = value }` is fine when its keys are literals: values may be anything
#   (ids, ARNs) since Terraform needs only the keys at plan time;
# - an expression that is exactly `var.X`, `local.X` or `module.M.O` is followed (to every caller's
#   argument, the variable's default, the local's or output's expression) with the same rule;
# - any other expression (`toset(var.x)`, `keys(...)`, a `for`) must be wholly known: every value
#   it references is followed the same way and must end in literals or root-module variables
#   (tfvars are known at plan time). A resource or data-source attribute is not known
#   (ids, ARNs, names AWS generates), nor is a variable named `*_ids` / `*_arns`, whatever its
#   caller passes today: lists of other resources' ids are exactly what fails on a new account;
# - `count = length(X)` needs only X's length: a list or map literal of unknown values is fine.
REFERENCE = re.compile(
    r"(?<![\w.\"-])(?:(?P<var>var|local)\.(?P<name>\w+)|module\.(?P<call>\w+)\.(?P<output>\w+)"
    r"|(?P<resource>(?:data\.)?[a-z][a-z0-9]*_\w+\.\w+))")
LITERAL_STRING = re.compile(r'"(?:[^"\\$]|\\.|\$(?!\{))*"')
PASS_THROUGH = re.compile(r"\$\{(?:(?P<var>var|local)\.(?P<name>\w+)|module\.(?P<call>\w+)\.(?P<output>\w+))\}")
LENGTH_OF = re.compile(r"\$\{length\((?P<inner>(?:var|local)\.\w+|module\.\w+\.\w+)\)\}")


def _follow(match: re.Match[str], module: Module, mode: str, trail: tuple[str, ...]) -> list[str]:
    """Problems of the value a var./local./module. reference stands for."""
    if match["call"]:
        callee = module.callee(match["call"])
        output = callee.outputs[match["output"]]
        return _not_plan_time(output["value"], callee, mode,
                              (*trail, f"{callee.name} output {match['output']} = {output['value']}"))
    name = match["name"]
    if match["var"] == "local":
        return _not_plan_time(module.locals[name], module, mode, (*trail, f"local.{name} = {module.locals[name]}"))
    problems = []
    if re.search(r"_(ids|arns)$", name) and mode != "length":
        problems.append(" ← ".join(trail) + f": var.{name} is by its name a list of ids/ARNs of other resources, "
                        "only known after apply")
    callers = module.callers()
    for caller, call, body in callers:
        if name in body:
            problems += _not_plan_time(body[name], caller, mode,
                                       (*trail, f"{caller.name} module.{call}.{name} = {body[name]}"))
        else:
            default = module.variables[name].get("default")
            problems += _not_plan_time(default, module, mode, (*trail, f"default {default}"))
    return problems  # no callers: a root variable, given at plan time


def _not_plan_time(value: Any, module: Module, mode: str, trail: tuple[str, ...]) -> list[str]:
    """Why `value` may be unknown at plan time ([] if known). mode: "keys" (a for_each: only map
    keys matter), "length" (only the number of elements matters) or "value" (all of it)."""
    if len(trail) > 12:
        return [" ← ".join(trail) + ": too deep to follow"]
    if isinstance(value, dict):
        problems = [" ← ".join(trail) + f": map key {key} is computed" for key in value if _is_expression(key)]
        if mode == "value":
            for key, item in value.items():
                if not key.startswith("__"):
                    problems += _not_plan_time(item, module, mode, trail)
        return problems
    if isinstance(value, list):
        return [] if mode == "length" else [p for item in value for p in _not_plan_time(item, module, "value", trail)]
    if not _is_expression(value):
        return []
    whole = PASS_THROUGH.fullmatch(value)
    if whole:
        return _follow(whole, module, mode, trail)
    length = LENGTH_OF.fullmatch(value)
    inner = PASS_THROUGH.fullmatch("${" + length["inner"] + "}") if length else None
    if inner and mode != "keys":
        return _follow(inner, module, "length", trail)
    problems = []
    for reference in REFERENCE.finditer(LITERAL_STRING.sub('""', value)):
        if reference["resource"]:
            problems.append(" ← ".join(trail) + f": {reference['resource']} is an attribute of a resource or data "
                            "source, only known after apply")
        else:
            problems += _follow(reference, module, "value", trail)
    return problems


def test_for_each_keys_and_counts_are_known_at_plan_time() -> None:
    problems = []
    for module in modules().values():
        blocks_ = [*module.resources.items(), *((f"module.{call}", body) for call, body in module.calls.items())]
        for address, body in blocks_:
            for argument, mode in (("for_each", "keys"), ("count", "value")):
                if argument in body:
                    problems += _not_plan_time(body[argument], module, mode,
                                               (f"{module.name}: {address}.{argument} = {body[argument]}",))
    assert not problems, "\n".join(problems)


def test_the_plan_time_heuristic_catches_ids_and_allows_static_keys() -> None:
    module = Module(TERRAFORM / "modules" / "heuristic-example", [_clean(hcl2.loads("""
variable "client_security_group_ids" { type = list(string) }
variable "client_security_groups" { type = map(string) }
resource "aws_security_group" "a" {}
locals {
  by_name = { a = aws_security_group.a.id }
  ids     = [aws_security_group.a.id]
}
"""))])

    def unknown(value: Any, mode: str = "keys") -> bool:
        return bool(_not_plan_time(value, module, mode, ("example",)))

    assert unknown("${toset(var.client_security_group_ids)}")  # the name alone gives it away
    assert unknown("${toset([aws_security_group.a.id])}")
    assert unknown("${toset(values(local.by_name))}") and unknown("${local.ids}")
    assert unknown({"${aws_security_group.a.id}": "x"})  # a computed key
    assert not unknown("${var.client_security_groups}")  # a root variable: given at plan time
    assert not unknown("${local.by_name}") and not unknown({"a": "${aws_security_group.a.id}"})
    assert not unknown('${toset(["ecr.api", "logs"])}')
    assert not unknown("${length(local.ids)}", "value")  # count: only the length is needed
    assert unknown("${local.by_name}", "value")


def _trace(value: Any, module: Module, depends: frozenset[str] = frozenset()
           ) -> list[tuple[Module, str, frozenset[str]]]:
    """The resources (module, "type.name") a plain reference leads to, through variables,
    locals and outputs, with the depends_on of the outputs passed on the way."""
    if not _is_expression(value):
        return []
    whole = PASS_THROUGH.fullmatch(value)
    if whole and whole["call"]:
        callee = module.callee(whole["call"])
        output = callee.outputs[whole["output"]]
        extra = frozenset(unquote(d).strip("${}") for d in output.get("depends_on", []))
        return _trace(output["value"], callee, depends | extra)
    if whole and whole["var"] == "local":
        return _trace(module.locals[whole["name"]], module, depends)
    if whole:
        return [found for caller, _, body in module.callers() for found in _trace(body.get(whole["name"]), caller, depends)]
    resource = re.fullmatch(r"\$\{((?:data\.)?[a-z][a-z0-9]*_\w+\.\w+)(?:\.[\w\[\]\"]+)*\}", value)
    return [(module, resource[1], depends)] if resource else []


def _bucket_controls(module: Module, bucket: str, type_name: str) -> list[tuple[str, dict[str, Any]]]:
    """The `type_name` resources (ownership controls, policy, ACL) configuring aws_s3_bucket `bucket`."""
    return [(name, body) for name, body in module.of_type(type_name)
            if any(found[:2] == (module, f"aws_s3_bucket.{bucket}") for found in _trace(body.get("bucket"), module))]


def _object_ownership(module: Module, bucket: str) -> tuple[str, str | None]:
    for name, body in _bucket_controls(module, bucket, "aws_s3_bucket_ownership_controls"):
        return unquote(body["rule"][0]["object_ownership"]), f"aws_s3_bucket_ownership_controls.{name}"
    return "BucketOwnerEnforced", None  # S3's default for new buckets since April 2023


def _statements(module: Module, document: Any) -> list[dict[str, Any]]:
    statements = []
    for found_module, address, _ in _trace(document, module):
        if address.startswith("data.aws_iam_policy_document."):
            body = found_module.resources[address]
            statements += body.get("statement", [])
            for source in body.get("source_policy_documents", []):
                statements += _statements(found_module, source)
    return statements


def _lets_s3_deliver_logs(statement: dict[str, Any]) -> bool:
    return (statement.get("effect", "Allow") == "Allow"
            and "s3:PutObject" in statement.get("actions", [])
            and any(p.get("type") == "Service" and "logging.s3.amazonaws.com" in p.get("identifiers", [])
                    for p in statement.get("principals", []))
            and any(c.get("variable", "").lower() in {"aws:sourceaccount", "aws:sourcearn"}
                    for c in statement.get("condition", [])))


def test_buckets_receiving_server_access_logs_let_the_logging_service_write() -> None:
    """With ACLs disabled (BucketOwnerEnforced, S3's default) S3 delivers access logs only where a
    bucket policy lets logging.s3.amazonaws.com s3:PutObject (scoped to the source account or
    bucket); PutBucketLogging checks that policy, so the logging resource must wait for it."""
    problems = []
    for module in modules().values():
        for name, body in module.of_type("aws_s3_bucket_logging"):
            where = f"{module.name}: aws_s3_bucket_logging.{name}"
            targets = [address for found, address, _ in _trace(body["target_bucket"], module) if found is module]
            if not targets or not targets[0].startswith("aws_s3_bucket."):
                problems.append(f"{where}: target_bucket {body['target_bucket']} is not a bucket of this module")
                continue
            bucket = targets[0].split(".")[1]
            ownership, _ = _object_ownership(module, bucket)
            policies = [policy for policy, policy_body in _bucket_controls(module, bucket, "aws_s3_bucket_policy")
                        if any(map(_lets_s3_deliver_logs, _statements(module, policy_body["policy"])))]
            acl_grant = ownership != "BucketOwnerEnforced" and any(
                unquote(acl.get("acl", "")) == "log-delivery-write"
                for _, acl in _bucket_controls(module, bucket, "aws_s3_bucket_acl"))
            if not policies and not acl_grant:
                acls = "ACLs off" if ownership == "BucketOwnerEnforced" else "no log-delivery-write ACL either"
                problems.append(f"{where} delivers to aws_s3_bucket.{bucket} (object ownership {ownership}: {acls}), "
                                "which has no bucket policy letting logging.s3.amazonaws.com s3:PutObject with an "
                                "aws:SourceAccount or aws:SourceArn condition (InvalidTargetBucketForLogging)")
            depends = {unquote(d).strip("${}") for d in body.get("depends_on", [])}
            if policies and not any(f"aws_s3_bucket_policy.{policy}" in depends for policy in policies):
                problems.append(f"{where} must depend_on aws_s3_bucket_policy.{policies[0]}: S3 checks the target's "
                                "policy when logging is turned on")
    assert not problems, "\n".join(problems)


def test_cloudfront_standard_logs_go_to_a_bucket_with_acls_enabled() -> None:
    """CloudFront's standard (legacy) logs are granted by ACL: a BucketOwnerEnforced bucket is
    refused ("The S3 bucket that you specified for CloudFront logs does not enable ACL access"), and
    the distribution must not be created before the ownership controls enabling ACLs are."""
    problems = []
    for module in modules().values():
        for name, body in module.of_type("aws_cloudfront_distribution"):
            for logging_config in body.get("logging_config", []):
                where = f"{module.name}: aws_cloudfront_distribution.{name} logs to {logging_config['bucket']}"
                found = _trace(logging_config["bucket"], module)
                if not found or not found[0][1].startswith("aws_s3_bucket."):
                    problems.append(f"{where}: cannot follow it to an aws_s3_bucket")
                    continue
                for bucket_module, address, depends in found:
                    ownership, controls = _object_ownership(bucket_module, address.split(".")[1])
                    if ownership == "BucketOwnerEnforced":
                        problems.append(f"{where} → {bucket_module.name} {address}, whose object ownership is "
                                        "BucketOwnerEnforced (ACLs disabled)")
                    elif controls not in depends:
                        problems.append(f"{where} → {bucket_module.name} {address}: the output passing it on must "
                                        f"depends_on {controls}, or CloudFront may see the bucket before ACLs are on")
    assert not problems, "\n".join(problems)


DEPRECATED_ARGUMENTS = Path(__file__).with_name("terraform_deprecated_arguments.yml")


def test_no_deprecated_arguments() -> None:
    deprecated: dict[str, dict[str, str]] = yaml.safe_load(DEPRECATED_ARGUMENTS.read_text())
    assert deprecated["aws_iam_role"]["managed_policy_arns"]
    found = []
    for module in modules().values():
        for address, body in module.resources.items():
            type_name = address.split(".")[0]
            for argument in set(body) & set(deprecated.get(type_name, {})):
                found.append(f"{module.name}: {address}.{argument} is deprecated: {deprecated[type_name][argument]}")
    assert not found, "\n".join(found)
