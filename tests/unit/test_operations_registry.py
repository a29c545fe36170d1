"""The declared kinds: their steps in order, the words people read, where a retry starts."""

import pytest
from django.utils import translation

from portal.models import Operation
from portal.operations import registry
from portal.operations.registry import OperationKind, Step


def test_the_steps_of_a_launch_run_in_their_declared_order() -> None:
    assert registry.kind_of(Operation.Kind.LAUNCH).step_names == [
        "onboard",
        "resolve",
        "server",
        "wait_active",
        "port",
        "floating_ip",
        "sync",
    ]
    assert registry.kind_of(Operation.Kind.DELETE).step_names == [
        "delete_server",
        "release_floating_ips",
        "wait_gone",
        "terminated",
    ]
    assert registry.kind_of(Operation.Kind.POWER).step_names == ["power_action", "power_wait"]


@pytest.mark.parametrize(
    ("kind", "step", "words"),
    [
        (Operation.Kind.LAUNCH, "onboard", "preparing the cloud account"),
        (Operation.Kind.LAUNCH, "resolve", "choosing the network"),
        (Operation.Kind.LAUNCH, "server", "asking the cloud for the VM"),
        (Operation.Kind.LAUNCH, "wait_active", "the cloud is building the VM"),
        (Operation.Kind.LAUNCH, "port", "finding the VM's network port"),
        (Operation.Kind.LAUNCH, "floating_ip", "attaching a public address"),
        (Operation.Kind.LAUNCH, "sync", "reading the final state"),
        (Operation.Kind.DELETE, "release_floating_ips", "releasing the public address"),
        (Operation.Kind.DELETE, "delete_server", "deleting the VM"),
        (Operation.Kind.DELETE, "wait_gone", "waiting for the cloud to remove the VM"),
        (Operation.Kind.DELETE, "terminated", "recording the deletion"),
        (Operation.Kind.POWER, "power_action", "sending the request to the cloud"),
        (Operation.Kind.POWER, "power_wait", "waiting for the cloud"),
        # No page names these: no words, as before.
        (Operation.Kind.DISCHARGE, "delete_vms", ""),
        (Operation.Kind.LAUNCH, "no_such_step", ""),
        (Operation.Kind.LAUNCH, "", ""),
        (Operation.Kind.PASSWORD_CHANGE, "anything", ""),
    ],
)
def test_each_step_has_the_words_people_read_while_it_runs(
    kind: str, step: str, words: str
) -> None:
    with translation.override("en"):
        assert registry.step_label(kind, step) == words


def test_the_step_words_are_translated_when_read() -> None:
    with translation.override("ko"):
        korean = registry.step_label(Operation.Kind.POWER, "power_wait")
    assert korean
    assert korean != "waiting for the cloud"


def test_a_teardown_retries_from_shutting_the_account_and_others_where_they_stopped() -> None:
    teardowns = (Operation.Kind.DISCHARGE, Operation.Kind.DISABLE)
    for kind in teardowns:
        declared = registry.kind_of(kind)
        # The account is shut first, and a retry never skips shutting it.
        assert declared.step_names[0] == "disable_user"
        assert declared.retry_from == "disable_user"
    others = [k for k in registry.declared_kinds() if k.kind not in teardowns]
    assert [k.kind for k in others if k.retry_from is not None] == []


def test_success_says_what_happened() -> None:
    assert registry.kind_of(Operation.Kind.POWER).success == "The power action finished."
    assert all(kind.success for kind in registry.declared_kinds())


def test_a_kind_the_engine_does_not_run_is_not_found() -> None:
    assert registry.find(Operation.Kind.PASSWORD_RESET) is None
    with pytest.raises(KeyError):
        registry.kind_of(Operation.Kind.PASSWORD_RESET)


def _noop(op: Operation, client: object) -> None:
    return None


def test_a_declaration_with_a_repeated_step_or_an_unknown_retry_step_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        OperationKind(kind="x", steps=(Step("a", _noop), Step("a", _noop)), success="done")
    with pytest.raises(ValueError, match="retry_from"):
        OperationKind(kind="x", steps=(Step("a", _noop),), success="done", retry_from="b")


def test_a_module_listed_without_a_declaration_is_refused() -> None:
    with pytest.raises(TypeError, match="KIND"):
        registry.install(["portal.operations.errors"])
    assert registry.find(Operation.Kind.LAUNCH) is not None  # the registry was left as it was


def test_each_kind_waits_for_the_cloud_as_long_as_its_setting_says() -> None:
    timeouts = {kind.kind: kind.timeout_setting for kind in registry.declared_kinds()}
    assert timeouts.pop(Operation.Kind.LAUNCH) == "OPERATION_LAUNCH_TIMEOUT_SECONDS"
    assert timeouts.pop(Operation.Kind.DELETE) == "OPERATION_DELETE_TIMEOUT_SECONDS"
    assert timeouts.pop(Operation.Kind.DISCHARGE) == "OPERATION_DISCHARGE_TIMEOUT_SECONDS"
    assert set(timeouts.values()) == {"OPERATION_POWER_TIMEOUT_SECONDS"}
