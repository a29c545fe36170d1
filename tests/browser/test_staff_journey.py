"""An operator onboards a cohort from a roster, gives them VMs, stops and deletes them; a viewer
finds nothing to run. Everything through Chromium, the cloud being devcloud over HTTP."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from playwright.sync_api import FilePayload, Page, expect

from portal import cloud
from portal.models import Batch, FloatingIP, Operation, Soldier
from tests.browser.conftest import People, Stack, leaks
from tests.browser.journey import Journey, assert_times_are_kst, tab_to
from tests.browser.support import ko, staff_login, vm_status, wait_for_batch_to_finish, words

UNIT = "제7기동대대"
GOOD = [
    ("24-7100001", "김하늘"),
    ("24-7100002", "이바다"),
    ("24-7100003", "박똘똘"),  # 똘 is in CP949 but not in EUC-KR
]
NO_NAME = "24-7100009"
BAD_DATE = "24-7100010"


def roster_cp949() -> bytes:
    """The unit's roster as Excel saves a Korean CSV: CP949, CRLF; two rows are wrong."""
    rows = [["군번", "이름", "소속", "입대일", "전역일"]]
    rows += [[number, name, UNIT, "2025-03-04", "2099-09-03"] for number, name in GOOD]
    rows.append([NO_NAME, "", UNIT, "2025-03-04", "2099-09-03"])
    rows.append([BAD_DATE, "최오류", UNIT, "2025-02-30", "2099-09-03"])
    return "".join(",".join(row) + "\r\n" for row in rows).encode("cp949")


def choose_action(page: Page, action: str) -> None:
    """Tick every row of the list and run one of its actions, as a person does in the admin."""
    page.get_by_role("checkbox", name=ko("Select all objects on this page for an action")).check()
    page.get_by_role("combobox", name=ko("Action:")).select_option(label=ko(action))
    page.get_by_role("button", name=ko("Run")).click()


def search(page: Page, text: str) -> None:
    page.get_by_role("search").get_by_role("textbox", name=ko("Search")).fill(text)
    page.get_by_role("search").get_by_role("button", name=ko("Search")).click()


def test_an_operator_onboards_launches_stops_and_deletes_a_cohort(
    journey: Journey, people: People, stack: Stack
) -> None:
    journey.name = "staff"
    page = journey.open()
    page.goto("/admin/")
    journey.see("login")
    staff_login(page, "journey-operator", people.staff_passwords["operator"])
    journey.see("console-home")

    page.get_by_role("link", name=ko("soldiers")).first.click()
    journey.see("soldiers")
    page.get_by_role("link", name=ko("Import roster")).click()
    journey.see("roster-upload")
    page.get_by_label(ko("Roster file (.xlsx or .csv)")).set_input_files(
        files=FilePayload(name="7기동대대.csv", mimeType="text/csv", buffer=roster_cp949())
    )
    page.get_by_role("button", name=ko("Upload and preview")).click()

    # The dry run: the two bad rows are rejected, each with its reason.
    expect(page.get_by_text(words("CSV, encoding %(encoding)s"))).to_contain_text(
        re.compile("cp949", re.IGNORECASE)
    )
    journey.see("roster-preview")
    no_name = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=NO_NAME))
    expect(no_name).to_contain_text(ko("Rejected"))
    expect(no_name).to_contain_text(ko("A new soldier needs a name."))
    bad_date = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=BAD_DATE))
    expect(bad_date).to_contain_text(ko("Rejected"))
    expect(bad_date).to_contain_text("2025-02-30")
    for number, name in GOOD:
        row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=number))
        expect(row).to_contain_text(name)
        expect(row).to_contain_text(ko("New"))
    assert not Soldier.objects.filter(unit=UNIT).exists(), "a dry run wrote soldiers"

    # Confirmed with the keyboard only: Tab to the button, Enter.
    tab_to(page, page.get_by_role("button", name=ko("Confirm import")))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/admin/portal/batch/\d+/"))
    journey.see("onboard-batch-running")
    wait_for_batch_to_finish(page)
    assert assert_times_are_kst(page) >= 1
    journey.see("onboard-batch-done")
    cohort = list(Soldier.objects.filter(unit=UNIT).order_by("service_number"))
    assert [s.service_number for s in cohort] == [n for n, _ in GOOD]
    assert all(s.state == Soldier.State.ACTIVE for s in cohort), [s.state for s in cohort]

    # VMs for the cohort, after the preflight.
    page.goto("/admin/portal/soldier/")
    search(page, UNIT)
    expect(page.get_by_text(words("%(counter)s result", "%(counter)s results"))).to_contain_text(
        "3"
    )
    journey.see("soldiers-of-the-unit")
    choose_action(page, "Launch VMs…")
    journey.see("launch-form")
    expect(page.get_by_label(ko("Template"))).to_have_value(str(people.template.pk))
    page.get_by_role("button", name=ko("Check what fits")).click()
    expect(page.get_by_role("heading", name=ko("Every row fits"))).to_be_visible()
    journey.see("launch-preflight")
    page.get_by_role(
        "button",
        name=words(
            "Launch %(counter)s VM for the rows that fit",
            "Launch %(counter)s VMs for the rows that fit",
        ),
    ).click()
    page.wait_for_url(re.compile(r"/admin/portal/batch/\d+/"))
    wait_for_batch_to_finish(page)
    journey.see("launch-batch-done")

    # The status page: every VM of the cohort running, with its floating IP.
    page.goto("/admin/")
    page.get_by_role("link", name=ko("Status page")).click()
    for number, _name in GOOD:
        row = page.get_by_role("row").filter(has_text=number)
        expect(row).to_contain_text(vm_status("running"))
        expect(row).to_contain_text("ACTIVE")
        expect(row).to_contain_text(re.compile(r"172\.24\.4\.\d+"))
    assert assert_times_are_kst(page) >= len(GOOD)
    journey.see("status-page-running")
    recorded = set(
        FloatingIP.objects.filter(instance__owner__in=cohort, created_by_portal=True).values_list(
            "neutron_id", flat=True
        )
    )
    assert len(recorded) == len(GOOD)

    # Bulk stop.
    page.goto("/admin/portal/instance/")
    search(page, UNIT)
    journey.see("vms-of-the-unit")
    choose_action(page, "Stop")
    # A mass action says what it will do to which VMs first (issue 18 point 11).
    for number, _name in GOOD:
        expect(page.get_by_role("row").filter(has_text=number)).to_be_visible()
    journey.see("stop-confirmation")
    page.get_by_role("button", name=ko("Yes, stop them")).click()
    page.wait_for_url(re.compile(r"/admin/portal/batch/\d+/"))
    wait_for_batch_to_finish(page)
    journey.see("stop-batch-done")
    page.goto("/admin/status/")
    for number, _name in GOOD:
        expect(page.get_by_role("row").filter(has_text=number)).to_contain_text(
            vm_status("stopped")
        )
    journey.see("status-page-stopped")

    # Bulk delete, through the page that says what will happen.
    page.goto("/admin/portal/instance/")
    search(page, UNIT)
    choose_action(page, "Delete VMs…")
    expect(
        page.get_by_role(
            "heading",
            name=words("%(counter)s server will be deleted", "%(counter)s servers will be deleted"),
        )
    ).to_contain_text("3")
    expect(
        page.get_by_role(
            "heading",
            name=words(
                "%(counter)s floating IP will be released",
                "%(counter)s floating IPs will be released",
            ),
        )
    ).to_contain_text("3")
    journey.see("delete-confirmation")
    page.get_by_role("button", name=ko("Yes, delete them")).click()
    page.wait_for_url(re.compile(r"/admin/portal/batch/\d+/"))
    wait_for_batch_to_finish(page)
    journey.see("delete-batch-done")

    # The cloud itself, asked through the portal's client: nothing of the cohort is left.
    client = cloud.get_client()
    for soldier in cohort:
        project_id = soldier.project.keystone_id
        assert project_id
        assert client.list_servers(all_projects=True, project_id=project_id) == []
        left = [f for f in client.list_floating_ips(project_id=project_id) if f.id in recorded]
        assert left == [], left
    assert not {f.id for f in client.list_floating_ips()} & recorded

    assert journey.blocking_violations() == []
    assert leaks(stack, [journey]) == []


def test_a_viewer_finds_no_action_to_run(journey: Journey, people: People, stack: Stack) -> None:
    journey.name = "viewer"
    page = journey.open()
    page.goto("/admin/")
    staff_login(page, "journey-viewer", people.staff_passwords["viewer"])
    journey.see("console-home")
    expect(page.get_by_role("button", name=ko("Measure now"))).to_have_count(0)
    for path in ("/admin/portal/soldier/", "/admin/portal/instance/"):
        page.goto(path)
        journey.see(path.strip("/").replace("/", "-"))
        expect(page.get_by_role("combobox", name=ko("Action:"))).to_have_count(0)
        expect(page.get_by_role("button", name=ko("Run"))).to_have_count(0)
        expect(page.get_by_role("link", name=ko("Import roster"))).to_have_count(0)
    page.goto("/admin/status/")
    journey.see("status-page")
    expect(page.get_by_role("button", name=ko("Sync everything with the cloud now"))).to_have_count(
        0
    )
    batch = Batch.objects.create(
        kind=Operation.Kind.ONBOARD,
        requested_by=get_user_model().objects.get(username="journey-operator"),
    )
    page.goto("/admin/portal/batch/")
    journey.see("batches")
    page.get_by_role("link", name=str(batch.pk), exact=True).click()
    expect(page.get_by_role("progressbar")).to_be_visible()
    journey.see("batch")
    expect(page.get_by_role("button", name=ko("Retry failed rows"))).to_have_count(0)
    expect(page.get_by_role("button", name=ko("Cancel rows not started"))).to_have_count(0)
    assert journey.blocking_violations() == []
    assert leaks(stack, [journey]) == []
