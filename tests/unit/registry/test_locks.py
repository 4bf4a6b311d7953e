"""The alias lock (airflow_mlops.registry.locks): one alias move of a model at a time.

Against a local MLflow registry (SQLite): the lock is a registered model whose creation is atomic;
a second holder fails at once naming the first, an expired or unreadable lease is taken over, the
same request re-enters its own lock, and the lock goes when the block ends (even on an error) but
never when it has passed to another holder. The race against a real server, with the server
stopped in the middle, is in ``tests/integration/test_promotion_reliability.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from airflow_mlops.exceptions import (
    PromotionBlockedError,
    PromotionConflictError,
    RegistryError,
    RegistryLookupError,
    is_retryable,
)
from airflow_mlops.registry.locks import (
    DEFAULT_LEASE_SECONDS,
    TAG_LOCK_ACQUIRED,
    TAG_LOCK_EXPIRES,
    TAG_LOCK_HOLDER,
    alias_lock,
    is_lock_model,
    lock_name,
)

MODEL = "fraud"
LOCK = lock_name(MODEL, "champion")


def _lock_tags(client: Any, name: str = LOCK) -> dict[str, str] | None:
    """The lock's tags, or None when there is no lock."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(name).tags or {})
    except MlflowException as exc:
        assert exc.error_code == "RESOURCE_DOES_NOT_EXIST", exc
        return None


def _held_by(
    client: Any, holder: str, expires: float | str, acquired: str = "2026-01-02T03:04:05+00:00"
) -> None:
    """A lock left in the registry by ``holder`` (e.g. a request that crashed while holding it)."""
    client.create_registered_model(
        LOCK,
        tags={TAG_LOCK_HOLDER: holder, TAG_LOCK_EXPIRES: str(expires), TAG_LOCK_ACQUIRED: acquired},
    )


def mlflow_error(code: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException(f"registry said {code}", error_code=getattr(databricks_pb2, code))


class Scripted:
    """A client whose lock calls answer from scripts (an exception is raised, anything else returned);
    every call is recorded."""

    def __init__(self, *, create: list[Any], get: list[Any] | None = None) -> None:
        self.create, self.get = list(create), list(get or [])
        self.calls: list[str] = []

    @staticmethod
    def _answer(script: list[Any]) -> Any:
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def create_registered_model(self, name: str, **kwargs: Any) -> Any:
        self.calls.append("create")
        return self._answer(self.create)

    def get_registered_model(self, name: str) -> Any:
        self.calls.append("get")
        return self._answer(self.get)

    def delete_registered_model(self, name: str) -> None:
        self.calls.append("delete")

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self.calls.append(f"tag {key}")


def test_lock_names_are_marked_and_recognised() -> None:
    assert lock_name("fraud", "champion") == "fraud.mlops-lock.champion"
    assert lock_name("fraud", "canary") != lock_name("fraud", "champion")  # one lock per alias
    assert is_lock_model(lock_name("fraud", "canary"))
    assert not is_lock_model("fraud")
    assert not is_lock_model("fraud.mlops-locks")  # the marker, not a lookalike


def test_the_lock_exists_for_the_block_names_its_holder_and_goes_after(client: Any) -> None:
    before = time.time()
    with alias_lock(client, MODEL, "champion", holder="dag/run-1", lease_seconds=60):
        tags = _lock_tags(client)
        assert tags is not None
        assert tags[TAG_LOCK_HOLDER] == "dag/run-1"
        # The lease runs ``lease_seconds`` from the moment the lock was taken.
        assert (
            before + 60 - 0.001 <= float(tags[TAG_LOCK_EXPIRES]) <= time.time() + 60 + 0.001
        )  # written to the ms
        acquired = dt.datetime.fromisoformat(tags[TAG_LOCK_ACQUIRED])
        assert acquired.tzinfo is not None and acquired.utcoffset() == dt.timedelta(0)
        assert "dag/run-1" in client.get_registered_model(LOCK).description
        assert _lock_tags(client, lock_name(MODEL, "canary")) is None  # only this alias is locked
    assert _lock_tags(client) is None


def test_the_default_lease_is_the_modules(client: Any) -> None:
    before = time.time()
    with alias_lock(client, MODEL, "champion", holder="a"):
        expires = float(_lock_tags(client)[TAG_LOCK_EXPIRES])
    assert before + DEFAULT_LEASE_SECONDS - 0.001 <= expires <= time.time() + DEFAULT_LEASE_SECONDS + 0.001


def test_a_second_holder_fails_at_once_naming_the_first_and_runs_nothing(client: Any) -> None:
    ran = []
    with alias_lock(client, MODEL, "champion", holder="dag/run-1", lease_seconds=600):
        with (
            pytest.raises(PromotionConflictError) as caught,
            alias_lock(client, MODEL, "champion", holder="dag/run-2"),
        ):
            ran.append("second")
        # the first holder's lock is untouched
        assert _lock_tags(client)[TAG_LOCK_HOLDER] == "dag/run-1"
    assert ran == []
    message = str(caught.value)
    assert "dag/run-1 holds the lock" in message and "'fraud'@champion" in message
    assert not is_retryable(caught.value)  # final: the other promotion decides
    assert isinstance(caught.value, PromotionBlockedError)
    assert _lock_tags(client) is None


def test_the_conflict_says_since_when_and_until_when(client: Any) -> None:
    until = time.time() + 3600
    _held_by(client, "dag/other", f"{until:.3f}", acquired="2026-01-02T03:04:05+00:00")
    with pytest.raises(PromotionConflictError) as caught, alias_lock(client, MODEL, "champion", holder="me"):
        pass
    lease = dt.datetime.fromtimestamp(until, dt.UTC).isoformat(timespec="seconds")
    assert "since 2026-01-02T03:04:05+00:00" in str(caught.value)
    assert f"lease until {lease}" in str(caught.value)
    assert _lock_tags(client)[TAG_LOCK_HOLDER] == "dag/other"  # a live lock is never taken over


def test_different_aliases_and_models_do_not_contend(client: Any) -> None:
    with (
        alias_lock(client, MODEL, "champion", holder="a"),
        alias_lock(client, MODEL, "canary", holder="b"),
        alias_lock(client, "other-model", "champion", holder="c"),
    ):
        assert _lock_tags(client)[TAG_LOCK_HOLDER] == "a"
        assert _lock_tags(client, lock_name(MODEL, "canary"))[TAG_LOCK_HOLDER] == "b"
        assert _lock_tags(client, lock_name("other-model", "champion"))[TAG_LOCK_HOLDER] == "c"
    assert all(
        _lock_tags(client, lock_name(m, a)) is None for m, a in [(MODEL, "champion"), (MODEL, "canary")]
    )


@pytest.mark.parametrize("expires", ["a second ago", "0", "soon", ""])
def test_an_expired_or_unreadable_lease_is_taken_over(client: Any, expires: str) -> None:
    _held_by(client, "crashed/run", f"{time.time() - 1:.3f}" if expires == "a second ago" else expires)
    with alias_lock(client, MODEL, "champion", holder="dag/run-2", lease_seconds=60):
        tags = _lock_tags(client)
        assert tags[TAG_LOCK_HOLDER] == "dag/run-2"
        assert float(tags[TAG_LOCK_EXPIRES]) > time.time()
    assert _lock_tags(client) is None


def test_a_lock_without_a_holder_tag_is_someone_elses(client: Any) -> None:
    client.create_registered_model(LOCK, tags={TAG_LOCK_EXPIRES: f"{time.time() + 600:.3f}"})
    with (
        pytest.raises(PromotionConflictError, match=r"\? holds the lock since \?"),
        alias_lock(client, MODEL, "champion", holder="me"),
    ):
        pass


def test_the_same_request_retried_re_enters_its_lock_and_renews_the_lease(client: Any) -> None:
    # the request crashed holding the lock; its retry (same holder) must not wait for the lease
    _held_by(client, "dag/run-1", f"{time.time() + 5:.3f}")
    with alias_lock(client, MODEL, "champion", holder="dag/run-1", lease_seconds=600):
        tags = _lock_tags(client)
        assert tags[TAG_LOCK_HOLDER] == "dag/run-1"
        assert float(tags[TAG_LOCK_EXPIRES]) > time.time() + 500
    assert _lock_tags(client) is None


def test_the_lock_goes_when_the_block_fails_and_the_error_is_the_blocks(client: Any) -> None:
    with pytest.raises(ZeroDivisionError), alias_lock(client, MODEL, "champion", holder="a"):
        1 / 0  # noqa: B018
    assert _lock_tags(client) is None
    with alias_lock(client, MODEL, "champion", holder="b"):  # free for the next request
        assert _lock_tags(client)[TAG_LOCK_HOLDER] == "b"


def test_a_lock_that_passed_to_another_holder_is_left_to_it(client: Any) -> None:
    with alias_lock(client, MODEL, "champion", holder="slow", lease_seconds=600):
        # the lease ran out meanwhile and another request took the lock over
        client.set_registered_model_tag(LOCK, TAG_LOCK_HOLDER, "fast")
    assert _lock_tags(client)[TAG_LOCK_HOLDER] == "fast"


def test_a_lock_gone_before_the_release_is_not_an_error(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with alias_lock(client, MODEL, "champion", holder="a"):
        client.delete_registered_model(LOCK)
    assert _lock_tags(client) is None
    assert "its lease expires on its own" in caplog.text


def test_a_failing_release_never_masks_the_blocks_outcome(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    client = Scripted(create=[None], get=[mlflow_error("INTERNAL_ERROR")])
    with (
        pytest.raises(KeyError, match="the block's own error"),
        alias_lock(client, MODEL, "champion", holder="a"),
    ):
        raise KeyError("the block's own error")
    assert client.calls == ["create", "get"]
    assert "Could not release" in caplog.text
    # a release that reads the lock as ours deletes it
    ours = Scripted(create=[None], get=[SimpleNamespace(tags={TAG_LOCK_HOLDER: "a"})])
    with alias_lock(ours, MODEL, "champion", holder="a"):
        pass
    assert ours.calls == ["create", "get", "delete"]


@pytest.mark.parametrize(
    ("failure", "error", "retryable"),
    [
        ("INTERNAL_ERROR", RegistryError, True),  # a 500: the task retries
        ("TEMPORARILY_UNAVAILABLE", RegistryError, True),  # a 503
        ("PERMISSION_DENIED", RegistryLookupError, False),  # no retry changes that answer
    ],
)
def test_a_registry_failure_while_taking_the_lock_is_a_registry_error(
    failure: str, error: type[Exception], retryable: bool
) -> None:
    client = Scripted(create=[mlflow_error(failure)])
    with (
        pytest.raises(error, match="taking the promotion lock of 'fraud'@champion") as caught,
        alias_lock(client, MODEL, "champion", holder="a"),
    ):
        pytest.fail("the block ran without the lock")
    assert is_retryable(caught.value) is retryable
    assert not isinstance(caught.value, PromotionConflictError)


def test_an_unreachable_registry_while_taking_the_lock_is_retried() -> None:
    client = Scripted(create=[ConnectionRefusedError("connection refused")])
    with (
        pytest.raises(RegistryError, match="taking the promotion lock") as caught,
        alias_lock(client, MODEL, "champion", holder="a"),
    ):
        pytest.fail("the block ran without the lock")
    assert is_retryable(caught.value)


def test_failing_to_read_a_held_lock_is_a_registry_error() -> None:
    client = Scripted(create=[mlflow_error("RESOURCE_ALREADY_EXISTS")], get=[mlflow_error("INTERNAL_ERROR")])
    with (
        pytest.raises(RegistryError, match="reading the promotion lock of 'fraud'@champion"),
        alias_lock(client, MODEL, "champion", holder="a"),
    ):
        pytest.fail("the block ran without the lock")


def test_a_lock_released_between_create_and_read_is_tried_again() -> None:
    from types import SimpleNamespace

    client = Scripted(
        create=[mlflow_error("RESOURCE_ALREADY_EXISTS"), None],
        get=[mlflow_error("RESOURCE_DOES_NOT_EXIST"), SimpleNamespace(tags={TAG_LOCK_HOLDER: "a"})],
    )
    ran = []
    with alias_lock(client, MODEL, "champion", holder="a"):
        ran.append("block")
    assert ran == ["block"]
    assert client.calls == ["create", "get", "create", "get", "delete"]


def test_a_lock_that_keeps_changing_hands_gives_up_after_three_tries() -> None:
    client = Scripted(
        create=[mlflow_error("RESOURCE_ALREADY_EXISTS")], get=[mlflow_error("RESOURCE_DOES_NOT_EXIST")]
    )
    with (
        pytest.raises(PromotionConflictError, match="changed hands repeatedly"),
        alias_lock(client, MODEL, "champion", holder="a"),
    ):
        pytest.fail("the block ran without the lock")
    assert client.calls == ["create", "get"] * 3


def test_an_expired_lock_whose_deletion_fails_is_a_registry_error() -> None:
    from types import SimpleNamespace

    class DeleteFails(Scripted):
        def delete_registered_model(self, name: str) -> None:
            self.calls.append("delete")
            raise mlflow_error("INTERNAL_ERROR")

    stale = SimpleNamespace(tags={TAG_LOCK_HOLDER: "crashed", TAG_LOCK_EXPIRES: "1.0"})
    client = DeleteFails(create=[mlflow_error("RESOURCE_ALREADY_EXISTS")], get=[stale])
    with (
        pytest.raises(RegistryError, match=r"releasing lock 'fraud\.mlops-lock\.champion'"),
        alias_lock(client, MODEL, "champion", holder="a"),
    ):
        pytest.fail("the block ran without the lock")
    assert client.calls == ["create", "get", "delete"]
