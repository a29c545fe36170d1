"""Glance v2 behaviour: listing with relative next links, lookups, visibility, webob errors."""

from __future__ import annotations

from tests.devcloud.conftest import Cloud, Tenant, unique


def test_images_page_with_a_relative_next_link(cloud: Cloud, tenant: Tenant) -> None:
    first = tenant.member.get("image", "/images", params={"limit": 1}).json()
    assert len(first["images"]) == 1
    assert first["first"] == "/v2/images"
    assert first["next"].startswith("/v2/images?")
    second = tenant.member.session.get(f"{cloud.url}/image{first['next']}", timeout=10).json()
    assert second["images"][0]["id"] != first["images"][0]["id"]
    image = second["images"][0]
    assert image["status"] == "active"
    assert image["created_at"].endswith("Z")
    assert {"disk_format", "min_disk", "min_ram", "size", "visibility"} <= set(image)


def test_an_image_is_returned_bare_and_unknown_ids_are_webob_404s(
    cloud: Cloud, tenant: Tenant
) -> None:
    image_id = cloud.image_id("ubuntu")
    shown = tenant.member.get("image", f"/images/{image_id}").json()
    assert shown["id"] == image_id
    assert "image" not in shown
    as_json = tenant.member.get("image", "/images/nope", headers={"Accept": "application/json"})
    assert as_json.status_code == 404
    assert as_json.json() == {
        "message": "No image found with ID nope",
        "code": "404 Not Found",
        "title": "Not Found",
    }
    as_html = tenant.member.get("image", "/images/nope", headers={"Accept": "*/*"})
    assert as_html.status_code == 404
    assert as_html.headers["Content-Type"].startswith("text/html")
    assert "404 Not Found" in as_html.text


def test_private_images_are_visible_to_their_project_only(cloud: Cloud, tenant: Tenant) -> None:
    name = unique("private-image")
    created = tenant.member.post("image", "/images", {"name": name, "visibility": "private"})
    assert created.status_code == 201
    assert created.json()["status"] == "queued"
    mine = {i["name"] for i in tenant.member.get("image", "/images").json()["images"]}
    assert name in mine
    other = cloud.tenant()
    theirs = {i["name"] for i in other.member.get("image", "/images").json()["images"]}
    assert name not in theirs
    public = tenant.member.post("image", "/images", {"name": "x", "visibility": "public"})
    assert public.status_code == 403
