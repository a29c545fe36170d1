"""A card poll that finds nothing new answers 204 from the session and the cache alone; every
write to the VM, its operations or the soldier's account makes the next poll a full one."""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.http import Http404
from django.utils import timezone

from portal import pollcache, services
from portal.models import Instance, Operation, Soldier
from portal.selfservice import poll as poll_module
from portal.selfservice import views
from portal.selfservice.access import get_instance_of
from portal.selfservice.auth import KeystoneBackend
from portal.services.sessions import end_portal_sessions
from tests.integration.conftest import Cast, recorded_calls
from tests.selfservice.conftest import CloudSoldier

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.cloud,
    pytest.mark.needs("identity", "network", "image", "compute"),
]


def poll(client: Any, pk: int, seen: str) -> Any:
    return client.get(f"/vm/{pk}/card/", {"seen": seen}, HTTP_HX_REQUEST="true")


def seen_of(response: Any) -> str:
    found = re.search(r'name="seen" value="([^"]*)"', response.content.decode())
    assert found, response.content
    return found.group(1)


def primed(client: Any, pk: int, first_seen: str) -> str:
    """Poll the card once in full (as after a page load), then check the next poll is 204."""
    full = poll(client, pk, first_seen)
    assert full.status_code == 200, full
    seen = seen_of(full)
    assert seen.count(".") == 2
    assert seen.startswith(f"{first_seen}.")
    assert poll(client, pk, seen).status_code == 204
    return seen


@pytest.fixture
def queued_vm(soldier_a: CloudSoldier, cast: Cast) -> Instance:
    """A VM request the worker has not picked up: the card shows "Queued" and polls."""
    return services.soldier_vm_request(soldier=soldier_a.soldier, template=cast.template)


def test_an_unchanged_poll_answers_204_without_a_query_or_a_cloud_call(
    soldier_a: CloudSoldier, queued_vm: Instance, django_assert_num_queries: Any
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    with recorded_calls() as calls, django_assert_num_queries(0):
        answer = poll(soldier_a.client, queued_vm.pk, seen)
    assert calls.exchanges == []
    assert answer.status_code == 204  # htmx swaps nothing and keeps polling
    assert answer.content == b""
    assert answer["Cache-Control"] == "no-store"


def test_a_changed_card_costs_one_query_when_the_cache_vouches_for_the_session(
    soldier_a: CloudSoldier, queued_vm: Instance, django_assert_num_queries: Any
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    Instance.objects.filter(pk=queued_vm.pk).update(name="renamed")
    with django_assert_num_queries(1):  # the VM with its operation; no user, no session
        answer = poll(soldier_a.client, queued_vm.pk, seen)
    assert answer.status_code == 200
    assert "renamed" in answer.content.decode()


def _fields(obj: Any) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


@pytest.mark.parametrize("vm", ["queued_vm", "running_vm"])
def test_the_polls_loader_builds_the_rows_the_orm_builds(
    vm: str, request: pytest.FixtureRequest
) -> None:
    instance: Instance = request.getfixturevalue(vm)
    Instance.objects.filter(pk=instance.pk).update(
        addresses={"private": [{"addr": "10.0.0.5"}]}, launched_at=timezone.now()
    )
    orm = Instance.objects.select_related("pending_operation").get(pk=instance.pk)
    loaded = get_instance_of(instance.pk, soldier_id=instance.owner_id)
    assert _fields(loaded) == _fields(orm)
    assert {type(v) for v in _fields(loaded).values()} == {type(v) for v in _fields(orm).values()}
    if orm.pending_operation is None:
        assert loaded.pending_operation is None
    else:
        assert _fields(loaded.pending_operation) == _fields(orm.pending_operation)
    with pytest.raises(Http404):
        get_instance_of(instance.pk, soldier_id=instance.owner_id + 10_000)


def test_the_page_itself_hands_the_first_poll_to_the_full_view(
    soldier_a: CloudSoldier, queued_vm: Instance
) -> None:
    page = soldier_a.client.get("/").content.decode()
    assert 'name="seen" value="queued"' in page  # no version: the first poll renders
    assert poll(soldier_a.client, queued_vm.pk, "queued").status_code == 200


def _op(instance: Instance) -> Operation:
    op = instance.pending_operation
    assert op is not None
    return op


WRITES: dict[str, Callable[[Instance], Any]] = {
    # The engine records a step with a conditional queryset update.
    "an operation step (queryset update)": lambda i: Operation.objects.filter(pk=_op(i).pk).update(
        step="server"
    ),
    "an operation saved": lambda i: Operation.objects.get(pk=_op(i).pk).save(),
    "a new operation on the VM": lambda i: Operation.objects.create(
        kind=Operation.Kind.SYNC, soldier=i.owner, instance=i
    ),
    "the mirror updated (queryset update)": lambda i: Instance.objects.filter(pk=i.pk).update(
        task_state="scheduling"
    ),
    "the mirror saved": lambda i: Instance.objects.get(pk=i.pk).save(),
    # The reconciler writes every mirror of a pass with one bulk_update.
    "the mirror bulk-updated": lambda i: Instance.objects.bulk_update(
        [Instance.objects.get(pk=i.pk)], ["vm_state"]
    ),
    "the operation bulk-updated": lambda i: Operation.objects.bulk_update(
        [Operation.objects.get(pk=_op(i).pk)], ["message"]
    ),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_every_kind_of_write_to_the_vm_makes_the_next_poll_a_full_one(
    soldier_a: CloudSoldier, queued_vm: Instance, write: Callable[[Instance], Any]
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    write(queued_vm)
    again = poll(soldier_a.client, queued_vm.pk, seen)
    assert again.status_code == 200
    assert poll(soldier_a.client, queued_vm.pk, seen_of(again)).status_code == 204


def test_a_staff_action_and_the_engine_running_it_change_the_answer(
    soldier_a: CloudSoldier, running_vm: Instance, tasks: Any
) -> None:
    # Nova says the VM is powering off (the mirror is stale): the card polls.
    Instance.objects.filter(pk=running_vm.pk).update(task_state="powering-off")
    seen = primed(soldier_a.client, running_vm.pk, "stopping")

    services.instance_power(instance=running_vm, action=Instance.Action.STOP)
    queued = poll(soldier_a.client, running_vm.pk, seen)
    assert queued.status_code == 200
    assert ">Queued<" in queued.content.decode()

    tasks()  # the engine's steps: the stop goes through
    done = poll(soldier_a.client, running_vm.pk, seen_of(queued))
    assert done.status_code == 200  # settled: the card asks again, slowly
    assert ">Stopped<" in done.content.decode()
    assert poll(soldier_a.client, running_vm.pk, seen_of(done)).status_code == 204
    assert 'hx-trigger="every 20s"' in done.content.decode()

    # A start by staff (or a schedule) reaches the open page at its next slow poll.
    running_vm.refresh_from_db()
    services.instance_power(instance=running_vm, action=Instance.Action.START)
    started = poll(soldier_a.client, running_vm.pk, seen_of(done))
    assert started.status_code == 200
    assert 'hx-trigger="every 2s"' in started.content.decode()


def test_a_deleted_vms_card_stops_polling(
    soldier_a: CloudSoldier, running_vm: Instance, tasks: Any
) -> None:
    seen = primed(soldier_a.client, running_vm.pk, "running")
    running_vm.refresh_from_db()
    services.instance_delete(instance=running_vm)  # by staff
    tasks()
    gone = poll(soldier_a.client, running_vm.pk, seen)
    assert gone.status_code == 286  # htmx stops polling: nothing will change any more
    assert "hx-trigger" not in gone.content.decode()


def test_a_status_change_from_the_reconciler_changes_the_answer(
    soldier_a: CloudSoldier, running_vm: Instance, tasks: Any
) -> None:
    Instance.objects.filter(pk=running_vm.pk).update(task_state="powering-off")
    seen = primed(soldier_a.client, running_vm.pk, "stopping")

    services.cloud_reconcile()
    tasks()  # the pass mirrors what Nova says now: running, no task
    settled = poll(soldier_a.client, running_vm.pk, seen)
    assert settled.status_code == 200
    assert ">Running<" in settled.content.decode()


def _disable_by_save(s: Soldier) -> None:
    s.state = Soldier.State.DISABLED
    s.save()


def _deactivate_user(s: Soldier) -> None:
    user = get_user_model().objects.get(pk=s.user_id)
    user.is_active = False
    user.save()


REVOCATIONS: dict[str, Callable[[Soldier], Any]] = {
    "soldier disabled (saved)": _disable_by_save,
    "soldier disabled (queryset update)": lambda s: Soldier.objects.filter(pk=s.pk).update(
        state=Soldier.State.DISABLED
    ),
    "user deactivated": _deactivate_user,
    # A password change or reset elsewhere ends every session this way.
    "sessions ended": lambda s: end_portal_sessions(Soldier.objects.get(pk=s.pk)),
    "staff reset the password": lambda s: services.soldier_password_reset(
        soldier=Soldier.objects.get(pk=s.pk)
    ),
}


@pytest.mark.parametrize("revoke", REVOCATIONS.values(), ids=REVOCATIONS.keys())
def test_a_revoked_session_gets_no_answer_from_the_cache(
    soldier_a: CloudSoldier, queued_vm: Instance, revoke: Callable[[Soldier], Any]
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    revoke(soldier_a.soldier)
    answer = poll(soldier_a.client, queued_vm.pk, seen)
    assert answer.status_code == 302
    assert answer["Location"].startswith("/login/")


def test_a_disable_through_the_console_ends_the_polls(
    soldier_a: CloudSoldier, queued_vm: Instance, tasks: Any
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    services.soldier_disable(soldier=soldier_a.soldier)
    tasks()
    assert poll(soldier_a.client, queued_vm.pk, seen).status_code == 302


def test_another_soldier_gets_404_with_a_primed_cache_and_the_owners_seen_value(
    soldier_a: CloudSoldier, soldier_b: CloudSoldier, queued_vm: Instance, cast: Cast
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    # B's own card primes B's session in the cache too.
    mine = services.soldier_vm_request(soldier=soldier_b.soldier, template=cast.template)
    primed(soldier_b.client, mine.pk, "queued")
    key, until, mac = seen.split(".")
    for guess in (seen, f"{key}.0.{mac}", f"{key}.{until}.{'0' * 32}", "queued"):
        assert poll(soldier_b.client, queued_vm.pk, guess).status_code == 404, guess
    # The owner's answer is still the cached one.
    assert poll(soldier_a.client, queued_vm.pk, seen).status_code == 204


def test_a_card_whose_words_change_with_the_clock_is_not_unchanged_past_that_time(
    soldier_a: CloudSoldier, queued_vm: Instance, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.STATUS_BUILD_SLOW_SECONDS = 600
    started = timezone.now()
    Instance.objects.filter(pk=queued_vm.pk).update(status="BUILD")
    Operation.objects.filter(pk=_op(queued_vm).pk).update(
        state=Operation.State.RUNNING, step="server", started_at=started
    )
    seen = primed(soldier_a.client, queued_vm.pk, "building")
    until = int(seen.split(".")[1])
    assert until == int((started + timedelta(seconds=600)).timestamp()) + 1

    later = types.SimpleNamespace(time=lambda: float(until))
    monkeypatch.setattr(poll_module, "time", later)
    assert poll(soldier_a.client, queued_vm.pk, seen).status_code == 200


def test_without_a_shared_cache_every_poll_is_answered_from_the_database(
    soldier_a: CloudSoldier, queued_vm: Instance, settings: Any
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    settings.POLL_FAST_PATH = False  # what a per-process cache (locmemcache://) gets
    answer = poll(soldier_a.client, queued_vm.pk, seen)
    assert answer.status_code == 200
    assert seen_of(answer) == "queued"  # no version handed out either
    _deactivate_user(soldier_a.soldier)
    assert poll(soldier_a.client, queued_vm.pk, "queued").status_code == 302


def test_a_revocation_while_a_poll_loads_the_user_leaves_no_cached_approval(
    soldier_a: CloudSoldier, queued_vm: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    primed(soldier_a.client, queued_vm.pk, "queued")
    cache.delete(pollcache.auth_keys(soldier_a.soldier.user_id)[1])  # the next poll is a full one
    original = KeystoneBackend.get_user

    def load_then_revoke(self: KeystoneBackend, user_id: Any) -> Any:
        user = original(self, user_id)  # the database still says: an active soldier
        monkeypatch.setattr(KeystoneBackend, "get_user", original)
        _deactivate_user(soldier_a.soldier)  # committed before the poll stores what it saw
        return user

    monkeypatch.setattr(KeystoneBackend, "get_user", load_then_revoke)
    full = poll(soldier_a.client, queued_vm.pk, "queued")
    assert full.status_code == 200  # approved by the database as it was
    assert poll(soldier_a.client, queued_vm.pk, seen_of(full)).status_code == 302


def test_a_write_while_a_poll_reads_the_vm_makes_the_next_poll_a_full_one(
    soldier_a: CloudSoldier, queued_vm: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = primed(soldier_a.client, queued_vm.pk, "queued")
    Instance.objects.filter(pk=queued_vm.pk).update(name="first")
    original = views.get_instance_of

    def read_then_write(pk: int, *, soldier_id: int) -> Instance:
        instance = original(pk, soldier_id=soldier_id)  # the card will show "first"
        monkeypatch.setattr(views, "get_instance_of", original)
        Instance.objects.filter(pk=pk).update(name="second")
        return instance

    monkeypatch.setattr(views, "get_instance_of", read_then_write)
    stale = poll(soldier_a.client, queued_vm.pk, seen)
    assert "first" in stale.content.decode()
    fresh = poll(soldier_a.client, queued_vm.pk, seen_of(stale))
    assert fresh.status_code == 200
    assert "second" in fresh.content.decode()
