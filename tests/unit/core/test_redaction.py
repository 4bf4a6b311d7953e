"""Redaction of credentials and server paths in text shown to people (``airflow_mlops.redaction``)."""

from __future__ import annotations

import logging
import sys

import pytest

from airflow_mlops.redaction import (
    MASK,
    RedactingFilter,
    RedactingRecordFactory,
    plain_env_problem,
    redact_credentials,
    redact_paths,
    redact_record,
    secret_like_value,
)

SECRET = "s3cr3t-Pa55w0rd"


# --- credentials in URIs, pairs and headers ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"http://alice:{SECRET}@mlflow.internal:5000/api", "http://***@mlflow.internal:5000/api"),
        (f"HTTPS://{SECRET}@mlflow/", "HTTPS://***@mlflow/"),
        (f"postgresql+psycopg2://airflow:{SECRET}@db:5432/airflow", "@db:5432/airflow"),
        (f"http://u:pa/ss{SECRET}@h:1/x", "http://***@h:1/x"),
        (f"http://h/api?token={SECRET}&run=1", "http://h/api?token=***&run=1"),
        (f"http://h/?x=1&access_token={SECRET}", "access_token=***"),
        (f"s3://b/k?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}", "X-Amz-Signature=***"),
        (f"http://h/?API_KEY={SECRET}", "API_KEY=***"),
        (f"dsn host=db password={SECRET} user=x", "password=***"),
        (f"Authorization: Bearer {SECRET}", "Bearer ***"),
        (f"failed: 'http://bob:{SECRET}@h/' (connection refused)", "'http://***@h/'"),
    ],
)
def test_credentials_are_redacted_in_any_uri_or_pair(text: str, kept: str) -> None:
    out = redact_credentials(text)
    assert SECRET not in out and kept in out


@pytest.mark.parametrize(
    "text",
    [
        "http://mlflow:5000/api/2.0/mlflow/runs/get?run_id=abc",
        "/models/fraud/versions/3",
        "v1 of fraud: key abc",
    ],
)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert redact_credentials(text) == text


def test_a_credential_env_value_is_masked_wherever_it_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-" + SECRET)
    monkeypatch.setenv("MY_SERVICE_API_KEY", "k" + SECRET)
    assert SECRET not in redact_credentials(f"header was tok-{SECRET}; key k{SECRET}")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    assert redact_credentials("true") == "true"


def test_a_logged_traceback_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("tests.cli_attacks")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(RedactingRecordFactory(previous))
    try:
        try:
            raise ConnectionError(f"http://alice:{SECRET}@mlflow/api?token={SECRET}")
        except ConnectionError:
            logger.exception("the registry failed")
            logger.warning("again", exc_info=True, stack_info=True)
    finally:
        logging.setLogRecordFactory(previous)
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConnectionError" in err and "mlflow/api" in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("sqlite:////srv/airflow/mlflow.db failed", "/srv/airflow"),
        ("artifact at mlflow-artifacts:/0/abc/artifacts", "0/abc"),
        ("dbfs:/Volumes/team/x", "Volumes"),
        ("./mlruns/0/abc", "mlruns"),
        ("C:\\Users\\svc\\mlflow", "Users"),
        (f"{{'Authorization': 'Basic {SECRET}'}}", SECRET),
        (f"Authorization: Bearer {SECRET}", SECRET),
        (f'{{"password": "{SECRET}"}}', SECRET),
    ],
)
def test_paths_and_credentials_in_other_spellings_are_redacted(text: str, leak: str) -> None:
    assert leak not in redact_paths(text)


def test_http_links_and_plain_words_stay() -> None:
    for text in (
        "see https://docs.example.org/a/b",
        "urn:airflow-mlops:predicate:evaluation:v1",
        "ratio 1/2 at 10:30",
    ):
        assert redact_paths(text) == text


def test_userinfo_is_masked_but_host_port_and_path_stay() -> None:
    out = redact_credentials(f"cannot reach http://alice:{SECRET}@mlflow:5000/api?token=abc&x=1")
    assert out == "cannot reach http://***@mlflow:5000/api?token=***&x=1"


@pytest.mark.parametrize("value", [None, 42, 3.5, ["http://u:p4ss@h/"]])
def test_any_object_is_turned_into_text_first(value: object) -> None:
    out = redact_credentials(value)
    assert isinstance(out, str) and "p4ss" not in out


def test_short_or_boolean_env_values_are_not_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    # a credential-looking name with a short or boolean value would mask common words everywhere
    monkeypatch.setenv("SOME_TOKEN_TTL", "60")
    monkeypatch.setenv("USE_ACCESS_KEY", "false")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "al")  # listed, but under four characters
    assert redact_credentials("ttl 60, flag false, user al") == "ttl 60, flag false, user al"


def test_a_listed_credential_variable_is_masked_whatever_its_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "svc-ml")
    assert redact_credentials("login as svc-ml failed") == f"login as {MASK} failed"


# --- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "open /srv/airflow/dags/x.yaml: denied",
        "s3://bucket/models/fraud/v1",
        "file:///tmp/model",
        "~/secrets/key.pem",
    ],
)
def test_redact_paths_hides_every_path_spelling(text: str) -> None:
    out = redact_paths(text)
    assert "<path>" in out
    for fragment in ("airflow", "bucket", "tmp", "secrets"):
        assert fragment not in out


def test_redact_paths_uses_the_placeholder_given_and_redacts_credentials_too() -> None:
    out = redact_paths(f"http://u:{SECRET}@h/ wrote /var/lib/x", placeholder="[hidden]")
    assert out == "http://***@h/ wrote [hidden]"


# --- log records --------------------------------------------------------------------------------


def _record(msg: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]


def test_a_record_with_arguments_is_redacted_once_formatted() -> None:
    record = redact_record(_record("cannot reach %s (try %d)", f"http://u:{SECRET}@h/", 2))
    assert record.getMessage() == "cannot reach http://***@h/ (try 2)"
    assert record.args is None


def test_a_clean_record_keeps_its_arguments() -> None:
    record = redact_record(_record("run %s finished", "abc"))
    assert record.args == ("abc",) and record.getMessage() == "run abc finished"


def test_a_malformed_record_is_left_to_logging() -> None:
    record = redact_record(_record("%s and %s", "only one"))
    assert record.msg == "%s and %s" and record.args == ("only one",)


def test_the_live_exception_is_dropped_after_its_traceback_is_redacted() -> None:
    try:
        raise ConnectionError(f"http://u:{SECRET}@h/")
    except ConnectionError:
        record = redact_record(_record("failed", exc_info=sys.exc_info()))
    assert record.exc_info is None
    assert record.exc_text is not None and "ConnectionError" in record.exc_text
    assert SECRET not in record.exc_text


def test_the_filter_redacts_records_made_before_the_factory(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.redaction.filter")
    filt = RedactingFilter()
    caplog.handler.addFilter(filt)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("token=%s", SECRET)
    finally:
        caplog.handler.removeFilter(filt)
    assert SECRET not in caplog.text and "token=***" in caplog.text


def test_the_factory_wraps_the_previous_factory() -> None:
    made: list[logging.LogRecord] = []

    def previous(*args: object, **kwargs: object) -> logging.LogRecord:
        made.append(logging.LogRecord(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    record = RedactingRecordFactory(previous)(
        "t", logging.INFO, __file__, 1, f"password={SECRET}", None, None
    )
    assert made == [record] and SECRET not in record.getMessage()


# --- credentials where plain values belong --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-----BEGIN PRIVATE KEY-----\nMIIE...", "a PEM key or certificate"),
        ("AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "a JSON Web Token"),
        ("ghp_" + "a1B2c3D4e5" * 3, "a service token"),
        ("password=hunter2", "a password or token pair"),
        ("https://bob:pw@registry/x", "a URI with credentials"),
        ("q8Zr1XvB7kLp2MwN9tYc4HsD", "a random token"),
    ],
)
def test_credential_values_are_recognised_and_named(value: str, why: str) -> None:
    assert secret_like_value(value) == why


@pytest.mark.parametrize(
    "value",
    ["/opt/models/fraud", "s3://bucket/key", "https://mlflow:5000", "0.001", "ab" * 32, "FraudModelV2"],
)
def test_ordinary_values_are_not_credentials(value: str) -> None:
    assert secret_like_value(value) is None


def test_plain_env_names_the_variables_but_never_the_values() -> None:
    problem = plain_env_problem({"DB_PASSWORD": "hunter2-long", "LEVEL": "INFO"})
    assert problem is not None and "DB_PASSWORD" in problem and "hunter2" not in problem
    assert "LEVEL" not in problem

    problem = plain_env_problem({"ENDPOINT": "https://bob:hunter2@h/"})
    assert problem is not None and "ENDPOINT (a URI with credentials)" in problem
    assert "hunter2" not in problem


def test_plain_env_of_ordinary_variables_is_fine() -> None:
    assert plain_env_problem({}) is None
    assert plain_env_problem({"LOG_LEVEL": "DEBUG", "MODEL_DIR": "/models", "EPOCHS": 3}) is None
