"""Glance v2: image listing and lookup, plus the few admin actions tests need."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from devcloud.core import (
    FALSE_WORDS,
    Request,
    Response,
    Router,
    Service,
    glance_error,
    iso_z,
    new_id,
    now,
)

if TYPE_CHECKING:
    from devcloud.app import Cloud

Doc = dict[str, Any]
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
VERSIONS = ("2.16", "2.15", "2.14", "2.13", "2.12")


class Image(Service):
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.store = cloud.store
        r = self.router = Router()
        r.add("GET", "", self.versions, public=True)
        r.add("GET", "/versions", self.versions_ok, public=True)
        r.add("GET", "/v2/images", self.list_images)
        r.add("POST", "/v2/images", self.create_image)
        r.add("GET", "/v2/images/(?P<image_id>[^/]+)", self.get_image)
        r.add("DELETE", "/v2/images/(?P<image_id>[^/]+)", self.delete_image)
        r.add("POST", "/v2/images/(?P<image_id>[^/]+)/actions/deactivate", self.deactivate)
        r.add("POST", "/v2/images/(?P<image_id>[^/]+)/actions/reactivate", self.reactivate)

    def _versions_body(self, req: Request) -> Doc:
        values = [
            {
                "id": f"v{v}",
                "status": "CURRENT" if index == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": f"{req.base_url}/image/v2/"}],
            }
            for index, v in enumerate(VERSIONS)
        ]
        return {"versions": values}

    def versions(self, req: Request) -> Response:
        return Response(300, self._versions_body(req))

    def versions_ok(self, req: Request) -> Response:
        return Response(200, self._versions_body(req))

    def visible(self, req: Request) -> list[Doc]:
        """Images this token may see: public and community ones, plus its project's own."""
        token = req.token
        return [
            image
            for image in self.store.values("image")
            if token.is_admin
            or image["visibility"] in ("public", "community")
            or image["owner"] == token.project_id
        ]

    def view(self, image: Doc) -> Doc:
        out = dict(image)
        out["created_at"] = iso_z(image["created_at"])
        out["updated_at"] = iso_z(image["updated_at"])
        out["self"] = f"/v2/images/{image['id']}"
        out["file"] = f"/v2/images/{image['id']}/file"
        out["schema"] = "/v2/schemas/image"
        return out

    def _get(self, req: Request) -> Doc:
        image_id = req.params["image_id"]
        image = next((i for i in self.visible(req) if i["id"] == image_id), None)
        if image is None:
            raise glance_error(404, f"No image found with ID {image_id}", req.accept)
        return image

    def list_images(self, req: Request) -> Response:
        images = self.visible(req)
        visibility = req.q("visibility")
        if visibility and visibility != "all":
            images = [i for i in images if i["visibility"] == visibility]
        for attr in ("name", "status", "owner", "disk_format", "container_format"):
            value = req.q(attr)
            if value is not None:
                if value.startswith("in:"):
                    wanted = set(value[3:].split(","))
                    images = [i for i in images if str(i.get(attr)) in wanted]
                else:
                    images = [i for i in images if str(i.get(attr)) == value]
        for tag in req.q_all("tag"):
            images = [i for i in images if tag in i.get("tags", [])]
        hidden = req.q("os_hidden")
        want_hidden = hidden is not None and hidden.lower() not in FALSE_WORDS
        images = [i for i in images if bool(i.get("os_hidden")) == want_hidden]
        sort_key = req.q("sort_key") or "created_at"
        descending = (req.q("sort_dir") or "desc") == "desc"
        images.sort(key=lambda i: (str(i.get(sort_key, "")), i["id"]), reverse=descending)
        marker = req.q("marker")
        if marker:
            ids = [i["id"] for i in images]
            if marker not in ids:
                raise glance_error(400, f"marker [{marker}] not found", req.accept)
            images = images[ids.index(marker) + 1 :]
        limit_text = req.q("limit")
        try:
            limit = min(int(limit_text), MAX_LIMIT) if limit_text is not None else DEFAULT_LIMIT
        except ValueError as exc:
            raise glance_error(400, "limit param must be an integer", req.accept) from exc
        if limit < 0:
            raise glance_error(400, "limit param must be positive", req.accept)
        chunk = images[:limit]
        body: Doc = {
            "images": [self.view(i) for i in chunk],
            "first": "/v2/images",
            "schema": "/v2/schemas/images",
        }
        if chunk and len(chunk) == limit:
            params = [(k, v) for k, vs in req.query.items() if k != "marker" for v in vs]
            params.append(("marker", chunk[-1]["id"]))
            body["next"] = "/v2/images?" + urlencode(params)
        return Response(200, body)

    def get_image(self, req: Request) -> Response:
        return Response(200, self.view(self._get(req)))

    def create_image(self, req: Request) -> Response:
        try:
            body = json.loads(req.body or b"{}")
        except ValueError as exc:
            raise glance_error(400, "Malformed JSON in request body.", req.accept) from exc
        if not isinstance(body, dict):
            raise glance_error(400, "Malformed JSON in request body.", req.accept)
        visibility = body.get("visibility", "shared")
        if visibility == "public" and not req.token.is_admin:
            raise glance_error(
                403, "You are not authorized to complete publicize_image action.", req.accept
            )
        moment = now()
        image: Doc = {
            "id": body.get("id") or new_id(),
            "name": body.get("name"),
            "status": "queued",
            "visibility": visibility,
            "owner": req.token.project_id,
            "min_disk": int(body.get("min_disk", 0)),
            "min_ram": int(body.get("min_ram", 0)),
            "size": None,
            "virtual_size": None,
            "disk_format": body.get("disk_format"),
            "container_format": body.get("container_format"),
            "checksum": None,
            "os_hash_algo": None,
            "os_hash_value": None,
            "os_hidden": bool(body.get("os_hidden", False)),
            "protected": bool(body.get("protected", False)),
            "tags": list(body.get("tags", [])),
            "created_at": moment,
            "updated_at": moment,
        }
        self.store.put("image", image)
        return Response(
            201, self.view(image), {"Location": f"{req.base_url}/image/v2/images/{image['id']}"}
        )

    def _owned(self, req: Request) -> Doc:
        image = self._get(req)
        if not req.token.is_admin and image["owner"] != req.token.project_id:
            raise glance_error(403, "You are not permitted to modify this image.", req.accept)
        return image

    def delete_image(self, req: Request) -> Response:
        image = self._owned(req)
        if image.get("protected"):
            raise glance_error(
                403, f"Image {image['id']} is protected and cannot be deleted.", req.accept
            )
        self.store.delete("image", image["id"])
        return Response(204)

    def _set_status(self, req: Request, status: str) -> Response:
        if not req.token.is_admin:
            raise glance_error(
                403, "You are not authorized to complete deactivate action.", req.accept
            )
        image = self._get(req)
        image["status"] = status
        image["updated_at"] = now()
        self.store.put("image", image)
        return Response(204)

    def deactivate(self, req: Request) -> Response:
        return self._set_status(req, "deactivated")

    def reactivate(self, req: Request) -> Response:
        return self._set_status(req, "active")
