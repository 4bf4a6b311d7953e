"""The alias lock: one alias move of a model at a time.

MLflow has no compare-and-set on aliases, so two promotions of one model could interleave. Every
alias move holds a lock: a registered model named ``<model>.mlops-lock.<alias>``, whose *creation*
is atomic in the registry's database (a second creator gets ``RESOURCE_ALREADY_EXISTS``). The
loser of a race fails at once, naming the holder; a lock whose lease has expired (its holder
crashed) is taken over; the same request retried re-enters its own lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from airflow_mlops.exceptions import PromotionConflictError
from airflow_mlops.registry.audit import now
from airflow_mlops.registry.mlflow_registry import DOES_NOT_EXIST, lookup_failed

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

TAG_LOCK_HOLDER = "mlops.lock.holder"
TAG_LOCK_EXPIRES = "mlops.lock.expires"
TAG_LOCK_ACQUIRED = "mlops.lock.acquired"
LOCK_MARKER = ".mlops-lock."
# The lock is held only around a few registry calls (verification happens before it is taken).
DEFAULT_LEASE_SECONDS = 300.0
_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"


def lock_name(model_name: str, alias: str) -> str:
    return f"{model_name}{LOCK_MARKER}{alias}"


def is_lock_model(name: str) -> bool:
    """True for the transient lock entries (hide them from model listings)."""
    return LOCK_MARKER in name


@contextmanager
def alias_lock(
    client: MlflowClient,
    model_name: str,
    alias: str,
    *,
    holder: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Iterator[None]:
    """Hold the lock on ``model_name@alias`` for the block (see this module's docstring).

    :param holder: a stable id of this request (``dag_id/run_id`` or the command line's user and
        time): the same request retried after a crash re-enters its lock.
    :raises PromotionConflictError: another request holds an unexpired lock (final: the other
        promotion decides; re-run this one after it, against the new champion).
    :raises RegistryError: the registry failed while taking the lock (transient: retried).
    """
    from mlflow.exceptions import MlflowException

    name = lock_name(model_name, alias)
    where = f"the promotion lock of {model_name!r}@{alias}"
    for _ in range(3):
        expires = time.time() + lease_seconds
        tags = {TAG_LOCK_HOLDER: holder, TAG_LOCK_EXPIRES: f"{expires:.3f}", TAG_LOCK_ACQUIRED: now()}
        try:
            client.create_registered_model(
                name,
                tags=tags,
                description=f"Transient lock: {holder} is moving @{alias} of {model_name}. Do not edit.",
            )
            break
        except MlflowException as exc:
            if exc.error_code != _ALREADY_EXISTS:
                raise lookup_failed(f"taking {where}", exc) from exc
        except OSError as exc:
            raise lookup_failed(f"taking {where}", exc) from exc
        try:
            current = client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == DOES_NOT_EXIST:
                continue  # released meanwhile: try again
            raise lookup_failed(f"reading {where}", exc) from exc
        current_tags = current.tags or {}
        other = current_tags.get(TAG_LOCK_HOLDER, "?")
        if other == holder:
            log.info("Re-entering %s held by this request (%s)", where, holder)
            client.set_registered_model_tag(name, TAG_LOCK_EXPIRES, f"{expires:.3f}")
            break
        try:
            other_expires = float(current_tags.get(TAG_LOCK_EXPIRES, "0"))
        except ValueError:
            other_expires = 0.0
        if other_expires < time.time():
            log.warning("Taking over %s: its holder %s let the lease expire", where, other)
            _delete_lock(client, name)
            continue
        raise PromotionConflictError(
            f"another request is moving {model_name!r}@{alias}: {other} holds the lock since "
            f"{current_tags.get(TAG_LOCK_ACQUIRED, '?')} (lease until "
            f"{dt.datetime.fromtimestamp(other_expires, dt.UTC).isoformat(timespec='seconds')}). "
            "Nothing was changed; re-run after it, so the gates judge the candidate against the "
            "champion it leaves."
        )
    else:
        raise PromotionConflictError(f"could not take {where}: it changed hands repeatedly")
    try:
        yield
    finally:
        try:
            current = client.get_registered_model(name)
            if (current.tags or {}).get(TAG_LOCK_HOLDER) == holder:
                _delete_lock(client, name)
        except Exception as exc:  # the lease expires on its own; never mask the block's outcome
            log.warning("Could not release %s (%s); its lease expires on its own", where, exc)


def _delete_lock(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != DOES_NOT_EXIST:
            raise lookup_failed(f"releasing lock {name!r}", exc) from exc
