"""Promotion under failure, against a real MLflow server: the server stopped in the middle of a
promotion (at every registry write it makes), and promotions racing for one alias.

What must hold: the alias points at the old or the new version, never at nothing; the error a
stopped server gives is one a retry may fix (not a final one); the retried request converges
(the alias on the new version, the previous one recorded, the audit trail written once, the lock
released); of two racing promotions one wins and the other fails cleanly, nothing half-done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.exceptions import PromotionBlockedError, PromotionConflictError, is_retryable
from tests.integration.conftest import MLflowServer, free_port, register_signed, running_mlflow

pytestmark = pytest.mark.integration

PIPELINE = "rel-pipeline"
WRITES = (
    "create_registered_model",
    "delete_registered_model",
    "set_registered_model_alias",
    "set_registered_model_tag",
    "set_model_version_tag",
    "delete_model_version_tag",
)


@pytest.fixture(autouse=True)
def _no_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stopped server answers nothing; MLflow's client would retry for minutes by default.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


class RestartableServer:
    """One registry (same database, artifacts and port) that the test can kill and start again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self._stack: ExitStack | None = None
        self.server: MLflowServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._stack = ExitStack()
        self.server = self._stack.enter_context(running_mlflow(self.root, self.port, crash=True))

    @property
    def running(self) -> bool:
        return self._stack is not None

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableServer]:
    server = RestartableServer(tmp_path_factory.mktemp("mlflow-restart"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class GoesDownAt:
    """An MlflowClient whose server goes away at its ``at``-th registry write: ``before`` the write
    reaches it, or ``after`` (the write is done, its answer lost). From then on every call fails
    the way a call to a server that is gone fails (it is made against a port nobody listens on)."""

    def __init__(self, client: Any, at: int, mode: str = "before") -> None:
        from mlflow import MlflowClient

        self._client, self._at, self._mode = client, at, mode
        self._gone = MlflowClient(tracking_uri=f"http://127.0.0.1:{free_port()}")
        self.writes: list[str] = []
        self.down = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if not self.down and name in WRITES:
                self.writes.append(name)
                if len(self.writes) == self._at:
                    self.down = True
                    if self._mode == "after":
                        method(*args, **kwargs)
            if self.down:
                return getattr(self._gone, name)(*args, **kwargs)
            return method(*args, **kwargs)

        return call


class KillsServerAt(GoesDownAt):
    """The real thing: the ``at``-th registry write first kills the server process."""

    def __init__(self, client: Any, registry: RestartableServer, at: int) -> None:
        super().__init__(client, at)
        self._registry = registry

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in WRITES:
            return method

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes.append(name)
            if len(self.writes) == self._at:
                self._registry.stop()
            return method(*args, **kwargs)

        return write


def _promote(client: Any, version: str, keys: tuple[bytes, bytes], request: str, **kwargs: Any) -> Any:
    from airflow_mlops.registry.promotion import promote_version

    return promote_version(
        client,
        model_name=kwargs.pop("model", "rel-model"),
        version=version,
        alias="champion",
        trust=keys[1],
        request_id=request,
        by=f"test {request}",
        **kwargs,
    )


def _alias(client: Any, model: str) -> str | None:
    from airflow_mlops.registry.mlflow_registry import champion_version

    mv = champion_version(client, model, "champion", pipeline=PIPELINE)
    return None if mv is None else str(mv.version)


def _check_converges(
    client: Any, model: str, old: str, new: str, request: str, keys: Any, where: str
) -> None:
    from airflow_mlops.registry.promotion import audit_history, lock_name, previous_tag

    retried = _promote(client, new, keys, request, model=model)  # the task's retry
    assert _alias(client, model) == new, where
    assert retried.previous_version == old, where
    assert client.get_model_version(model, new).tags[previous_tag("champion")] == old, where
    promoted = [e for e in audit_history(client, model) if e["action"] == "promoted" and e["version"] == new]
    assert len(promoted) == 1, f"{where}: audit entries {promoted}"
    assert promoted[0]["from"] == old and promoted[0]["request"] == request, where
    # The lock is released (the retry re-enters a lock its first try could not release).
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_registered_model(lock_name(model, "champion"))


def test_the_server_going_away_at_any_write_of_a_promotion_leaves_old_or_new_and_the_retry_converges(
    registry: RestartableServer, signing_keys: tuple[bytes, bytes], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.url)
    model = "rel-model"
    old = register_signed(client, tmp_path, signing_keys, model=model, tag="rel/old", pipeline=PIPELINE)
    _promote(client, old, signing_keys, "rel/promote-old")

    # How many registry writes a promotion makes: the points where the server can vanish.
    probe = GoesDownAt(client, at=0)
    extra = register_signed(client, tmp_path, signing_keys, model=model, tag="rel/probe", pipeline=PIPELINE)
    _promote(probe, extra, signing_keys, "rel/probe")
    writes = list(probe.writes)
    print("registry writes of one promotion:", writes, flush=True)
    assert {"create_registered_model", "set_registered_model_alias", "delete_registered_model"} <= set(writes)
    _promote(client, old, signing_keys, "rel/back-to-old")  # the old champion again

    for mode in ("before", "after"):
        for at in range(1, len(writes) + 1):
            tag = f"{mode}{at}"
            new = register_signed(
                client, tmp_path, signing_keys, model=model, tag=f"rel/{tag}", pipeline=PIPELINE
            )
            request = f"rel/promote-{tag}"
            where = f"server gone {mode} write {at} ({writes[at - 1]})"
            try:
                _promote(GoesDownAt(client, at=at, mode=mode), new, signing_keys, request)
                failed = None
            except Exception as exc:  # the server is gone: whatever the client raises
                failed = exc
            if failed is not None:
                assert is_retryable(failed), f"{where}: a final error for a server that is gone: {failed!r}"
            assert _alias(client, model) in (old, new), (
                f"{where}: the alias points at {_alias(client, model)}"
            )
            _check_converges(client, model, old, new, request, signing_keys, where)
            print(f"{where}: {'failed' if failed else 'completed'}, converged", flush=True)
            _promote(client, old, signing_keys, f"rel/reset-{tag}")  # the old champion for the next cut


def test_killing_the_server_as_the_alias_moves_leaves_the_old_champion_and_the_retry_converges(
    registry: RestartableServer, signing_keys: tuple[bytes, bytes], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.url)
    model = "kill-model"
    old = register_signed(client, tmp_path, signing_keys, model=model, tag="kill/old", pipeline=PIPELINE)
    _promote(client, old, signing_keys, "kill/promote-old", model=model)
    new = register_signed(client, tmp_path, signing_keys, model=model, tag="kill/new", pipeline=PIPELINE)
    probe = GoesDownAt(client, at=0)
    spare = register_signed(client, tmp_path, signing_keys, model=model, tag="kill/probe", pipeline=PIPELINE)
    _promote(probe, spare, signing_keys, "kill/probe", model=model)
    _promote(client, old, signing_keys, "kill/back-to-old", model=model)
    at = probe.writes.index("set_registered_model_alias") + 1
    with pytest.raises(Exception) as caught:
        _promote(KillsServerAt(client, registry, at=at), new, signing_keys, "kill/promote-new", model=model)
    assert is_retryable(caught.value), repr(caught.value)
    assert not registry.running
    registry.start()  # the same database and port: the registry as it was when it died
    assert _alias(client, model) == old
    _check_converges(
        client, model, old, new, "kill/promote-new", signing_keys, "server killed at the alias move"
    )


def test_two_promotions_racing_for_the_champion_one_wins_the_other_fails_cleanly(
    registry: RestartableServer, signing_keys: tuple[bytes, bytes], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.promotion import audit_history, lock_name, previous_tag

    model = "race-model"
    client = MlflowClient(tracking_uri=registry.url)
    champion = register_signed(client, tmp_path, signing_keys, model=model, tag="race/c0", pipeline=PIPELINE)
    _promote(client, champion, signing_keys, "race/c0", model=model)
    for round_ in range(3):
        # Both candidates were judged against the same champion.
        candidates = [
            register_signed(
                client,
                tmp_path,
                signing_keys,
                model=model,
                tag=f"race/r{round_}-{i}",
                pipeline=PIPELINE,
                compared=True,
                champion=champion,
            )
            for i in range(2)
        ]
        barrier = threading.Barrier(2)
        outcomes: dict[str, Any] = {}

        def run(
            version: str, barrier: threading.Barrier = barrier, outcomes: dict[str, Any] = outcomes
        ) -> None:
            own = MlflowClient(tracking_uri=registry.url)
            barrier.wait()
            try:
                outcomes[version] = _promote(own, version, signing_keys, f"race/{version}", model=model)
            except Exception as exc:
                outcomes[version] = exc

        threads = [threading.Thread(target=run, args=(v,)) for v in candidates]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        won = [v for v, o in outcomes.items() if not isinstance(o, Exception)]
        lost = [v for v, o in outcomes.items() if isinstance(o, Exception)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        error = outcomes[lost[0]]
        # Clean: a final refusal that says why (the lock's holder, or stale evidence).
        assert isinstance(error, PromotionBlockedError) and not is_retryable(error), repr(error)
        assert isinstance(error, PromotionConflictError) or "evidence is stale" in str(error)
        assert _alias(client, model) == won[0]
        assert client.get_model_version(model, won[0]).tags[previous_tag("champion")] == champion
        assert previous_tag("champion") not in (client.get_model_version(model, lost[0]).tags or {})
        assert not [e for e in audit_history(client, model) if e.get("version") == lost[0]]
        with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST"):
            client.get_registered_model(lock_name(model, "champion"))
        # The loser, re-run, is judged against the new champion: its old evidence no longer holds.
        with pytest.raises(PromotionBlockedError, match="evidence is stale"):
            _promote(client, lost[0], signing_keys, f"race/{lost[0]}-again", model=model)
        champion = won[0]


def test_the_alias_lock_names_its_holder_expires_and_is_reentrant(
    registry: RestartableServer, signing_keys: tuple[bytes, bytes], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from airflow_mlops.registry.locks import alias_lock, lock_name

    model = "lock-model"
    client = MlflowClient(tracking_uri=registry.url)
    first = register_signed(client, tmp_path, signing_keys, model=model, tag="lock/a", pipeline=PIPELINE)
    with alias_lock(client, model, "champion", holder="dag/run-1"):
        with pytest.raises(PromotionConflictError, match="dag/run-1 holds the lock"):
            _promote(client, first, signing_keys, "dag/run-2", model=model)
        assert _alias(client, model) is None  # nothing moved
        # The same request (a retried task) re-enters its own lock and completes.
        assert _promote(client, first, signing_keys, "dag/run-1", model=model).version == first
    with pytest.raises(Exception, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_registered_model(lock_name(model, "champion"))

    # A holder that crashed: its lease expires, and the next promotion takes the lock over.
    second = register_signed(client, tmp_path, signing_keys, model=model, tag="lock/b", pipeline=PIPELINE)
    stale = alias_lock(client, model, "champion", holder="dag/crashed", lease_seconds=-1)
    stale.__enter__()  # never released, as if its worker died
    assert _promote(client, second, signing_keys, "dag/run-3", model=model).previous_version == first
    assert _alias(client, model) == second
