"""HTTP for the client: keystoneauth session, token sharing, retries, errors, logging, paging.

keystoneauth1 authenticates (password or application credential), keeps the token until
shortly before it expires and holds the catalog. This module adds what a portal with several
worker processes needs on top: the auth state shared through a ``TokenCache`` so workers do not
each log in, exactly one re-authentication on a 401 (after first adopting a token another worker
already fetched), retries for idempotent calls only, one log line per request, each exchange
timed for whoever watches (``watch_calls``: the portal's metrics), and the typed errors of
``portal.openstack.errors``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneauth1.identity.base import BaseIdentityPlugin

from portal.openstack.config import APPLICATION_CREDENTIAL, CloudConfig
from portal.openstack.errors import (
    ConfigurationError,
    EndpointNotFound,
    IncompleteListing,
    NotFound,
    OpenStackError,
    Timeout,
    Unavailable,
    error_from_response,
    request_id_of,
)
from portal.openstack.tokencache import MemoryTokenCache, TokenCache
from portal.openstack.types import Microversion

log = logging.getLogger("portal.openstack")
http_log = logging.getLogger("portal.openstack.http")

# keystoneauth refreshes a token with less than this many seconds left; cached states follow suit.
MIN_TOKEN_LIFE = BaseIdentityPlugin.MIN_TOKEN_LIFE_SECONDS
RETRY_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
# The newest compute microversion whose bodies this package has been checked against. 2.47 embeds
# the flavor in a server; beyond 2.90 nothing the portal reads changes, and newer versions
# restrict query strings further.
COMPUTE_MAX_MICROVERSION = Microversion(2, 90)
COMPUTE_WANTED_MICROVERSION = Microversion(2, 47)
MAX_PAGES = 100_000
_VERSION_SEGMENT = re.compile(r"^v\d+(\.\d+)?$")
_DEFAULT_VERSION_SUFFIX = {
    "identity": "/v3",
    "compute": "/v2.1",
    "network": "/v2.0",
    "image": "/v2",
}


def normalise_endpoint(service: str, url: str) -> str:
    """The versioned API root for a catalog URL (devstack registers some of them unversioned)."""
    url = url.rstrip("/")
    segments = urlsplit(url).path.split("/")
    if any(_VERSION_SEGMENT.match(segment) for segment in segments):
        return url
    return url + _DEFAULT_VERSION_SUFFIX.get(service, "")


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange as the client saw it (auth calls included)."""

    method: str
    url: str
    path: str  # the URL's path, without the query
    status: int


ExchangeObserver = Callable[[Exchange], None]
_observers: list[ExchangeObserver] = []
_guards = threading.local()


@contextlib.contextmanager
def guard_requests(check: Callable[[str], None]) -> Iterator[None]:
    """Call ``check(method)`` before every request this thread makes, while inside.

    ``check`` raises to stop the call before it is sent: the operations engine uses it so that
    a worker that lost its claim on an operation makes no further cloud call.
    """
    previous = getattr(_guards, "check", None)
    _guards.check = check
    try:
        yield
    finally:
        _guards.check = previous


def _guard(method: str) -> None:
    check = getattr(_guards, "check", None)
    if check is not None:
        check(method)


@contextlib.contextmanager
def observe_exchanges(observer: ExchangeObserver) -> Iterator[None]:
    """Call ``observer`` with every exchange any client of this process makes, while inside.

    It counts calls on the client's side, so a count means the same against any cloud: tests
    use it to check how many calls an operation makes; it sees neither headers nor bodies.
    """
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


@dataclass(frozen=True)
class Call:
    """One HTTP exchange's timing and outcome, for metrics (no URL, headers or body)."""

    service: str  # identity, compute, network, image (logins and token requests: identity)
    method: str
    seconds: float
    # "2xx".."5xx" from the status, or "timeout" / "connection" when no answer came.
    outcome: str


CallObserver = Callable[[Call], None]
_call_observers: list[CallObserver] = []
_calling = threading.local()


def watch_calls(observer: CallObserver) -> None:
    """Call ``observer`` with every HTTP exchange of every client of this process, for good.

    The portal's metrics register here once per process; adding the same observer again
    changes nothing.
    """
    if observer not in _call_observers:
        _call_observers.append(observer)


def unwatch_calls(observer: CallObserver) -> None:
    with contextlib.suppress(ValueError):
        _call_observers.remove(observer)


@contextlib.contextmanager
def _calling_service(service: str) -> Iterator[None]:
    previous = getattr(_calling, "service", None)
    _calling.service = service
    try:
        yield
    finally:
        _calling.service = previous


def _notify(call: Call) -> None:
    for observer in list(_call_observers):
        try:
            observer(call)
        except Exception:
            # Metrics must never fail a cloud call.
            log.exception("call observer %r failed", observer)


class _TimedSession(requests.Session):
    """The one door every request of the client goes through, keystoneauth's own included:
    each exchange is timed here and reported with the service it was for."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if not _call_observers:
            return super().send(request, **kwargs)
        # Only Transport.request names a service; what else comes through is keystoneauth
        # logging in or reading the identity endpoint's versions.
        service = getattr(_calling, "service", None) or "identity"
        started = time.perf_counter()
        outcome = "connection"
        try:
            response = super().send(request, **kwargs)
        except requests.Timeout:
            outcome = "timeout"
            raise
        else:
            outcome = f"{response.status_code // 100}xx"
            return response
        finally:
            _notify(Call(service, str(request.method), time.perf_counter() - started, outcome))


def _log_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """One line per HTTP exchange, the auth calls included; never headers or bodies."""
    request = response.request
    split = urlsplit(str(request.url))
    if _observers:
        exchange = Exchange(str(request.method), str(request.url), split.path, response.status_code)
        for observer in list(_observers):
            observer(exchange)
    path = split.path + (f"?{split.query}" if split.query else "")
    level = logging.WARNING if response.status_code >= 500 else logging.INFO
    http_log.log(
        level,
        "%s %s %s %.3fs %s",
        request.method,
        path,
        response.status_code,
        response.elapsed.total_seconds(),
        request_id_of(response) or "-",
    )


def build_requests_session() -> requests.Session:
    session = _TimedSession()
    session.hooks["response"].append(_log_response)
    return session


def build_auth_plugin(config: CloudConfig, *, project_id: str | None = None) -> BaseIdentityPlugin:
    """A keystoneauth plugin for the config, or for the same user scoped to ``project_id``."""
    auth_url = normalise_endpoint("identity", config.auth_url)
    if config.auth_type == APPLICATION_CREDENTIAL:
        if project_id is not None:
            raise ConfigurationError(
                "an application credential is bound to one project; it cannot be re-scoped "
                "(use password auth for a portal that acts in soldier projects)"
            )
        return v3.ApplicationCredential(
            auth_url=auth_url,
            application_credential_id=config.application_credential_id,
            application_credential_name=config.application_credential_name,
            application_credential_secret=config.application_credential_secret or "",
            username=config.username,
            user_id=config.user_id,
            user_domain_id=config.user_domain_id,
            user_domain_name=config.user_domain_name,
        )
    scope: dict[str, Any]
    if project_id is not None:
        scope = {"project_id": project_id}
    else:
        scope = {
            "project_id": config.project_id,
            "project_name": config.project_name,
            "project_domain_id": config.project_domain_id,
            "project_domain_name": config.project_domain_name,
        }
    return v3.Password(
        auth_url=auth_url,
        username=config.username,
        user_id=config.user_id,
        password=config.password or "",
        user_domain_id=config.user_domain_id,
        user_domain_name=config.user_domain_name,
        **scope,
    )


def map_keystoneauth_error(exc: Exception, method: str, url: str) -> OpenStackError:
    """Our error for an exception keystoneauth raised (auth calls, transport failures)."""
    if isinstance(exc, ks_exc.HttpError):
        response = getattr(exc, "response", None)
        if response is not None:
            return error_from_response(response, method)
        return OpenStackError(str(exc), status=exc.http_status, method=method, url=url)
    if isinstance(exc, ks_exc.ConnectTimeout):
        return Timeout(f"no answer in time from {url}", method=method, url=url)
    if isinstance(exc, ks_exc.ConnectionError):
        return Unavailable(f"cannot reach {url}: {type(exc).__name__}", method=method, url=url)
    if isinstance(exc, ks_exc.EndpointNotFound):
        return EndpointNotFound(str(exc), method=method, url=url)
    return OpenStackError(f"{type(exc).__name__}: {exc}", method=method, url=url)


class Shared:
    """What every scope of one client shares: settings, connection pool, token cache."""

    def __init__(self, config: CloudConfig, token_cache: TokenCache | None = None) -> None:
        self.config = config
        self.requests_session = build_requests_session()
        self.token_cache: TokenCache = token_cache or MemoryTokenCache()
        self.lock = threading.Lock()
        self.compute_versions: dict[str, Microversion | None] = {}
        self.sleep: Callable[[float], None] = time.sleep
        self.monotonic: Callable[[], float] = time.monotonic


class Transport:
    """Requests for one token scope."""

    def __init__(self, shared: Shared, plugin: BaseIdentityPlugin, scope: str) -> None:
        self.shared = shared
        self.config = shared.config
        self.plugin = plugin
        self.scope = scope
        self.session = ks_session.Session(
            auth=plugin,
            session=shared.requests_session,
            verify=self.config.verify,
            timeout=self.config.timeout,
            app_name="codesquare-portal",
        )
        self._token_lock = threading.Lock()
        self.authentications = 0  # how many times this scope logged in (tests, diagnostics)
        cache_id = plugin.get_cache_id()
        self._cache_key = (
            "openstack-auth:" + hashlib.sha256(cache_id.encode()).hexdigest() if cache_id else None
        )

    # --- tokens -------------------------------------------------------------------------

    @staticmethod
    def _min_life(ref: Any) -> float:
        """Seconds a token must have left to be used: keystoneauth's 120, or less for a cloud
        whose tokens live only minutes (else every call would log in again)."""
        if ref.issued is None or ref.expires is None:
            return float(MIN_TOKEN_LIFE)
        lifetime = (ref.expires - ref.issued).total_seconds()
        return float(min(MIN_TOKEN_LIFE, lifetime / 4))

    def _fresh(self, ref: Any) -> bool:
        return ref is not None and not ref.will_expire_soon(self._min_life(ref))

    def _usable(self) -> bool:
        return self._fresh(self.plugin.auth_ref)

    def _adopt_cached(self, unless_token: str | None = None) -> bool:
        """Install a still-valid token that another process (or scope object) stored."""
        if self._cache_key is None:
            return False
        state = self.shared.token_cache.get(self._cache_key)
        if not state:
            return False
        previous = self.plugin.get_auth_state()
        self.plugin.set_auth_state(state)
        ref = self.plugin.auth_ref
        if ref is None or not self._fresh(ref) or ref.auth_token == unless_token:
            self.plugin.set_auth_state(previous)
            return False
        return True

    def _authenticate(self) -> None:
        """Log in through keystoneauth and publish the new state; retried like a GET."""
        self.plugin.invalidate()
        url = str(self.plugin.auth_url)
        attempt = 0
        while True:
            _guard("GET")  # a login changes nothing in the cloud
            try:
                self.plugin.get_access(self.session)
                break
            except ks_exc.ClientException as exc:
                error = map_keystoneauth_error(exc, "POST", url)
                if not self._should_retry(error, attempt, idempotent=True):
                    raise error from exc
                self._backoff(attempt, "POST", "auth/tokens", error)
                attempt += 1
        self.authentications += 1
        ref = self.plugin.auth_ref
        assert ref is not None
        expires = ref.expires
        log.info("authenticated scope %s (token expires %s)", self.scope, expires)
        state = self.plugin.get_auth_state()
        if self._cache_key and state and expires is not None:
            ttl = (expires - datetime.now(UTC)).total_seconds() - self._min_life(ref)
            if ttl > 0:
                self.shared.token_cache.set(self._cache_key, state, ttl)

    def token(self) -> str:
        """A token that is not about to expire: ours, one another process shared, or a new one."""
        with self._token_lock:
            if not self._usable() and not self._adopt_cached():
                self._authenticate()
            ref = self.plugin.auth_ref
            assert ref is not None
            return str(ref.auth_token)

    def _renew_after_401(self, rejected: str, *, fresh: bool = False) -> tuple[str, bool]:
        """The token to retry with after ``rejected`` got a 401, and whether we logged in for it.

        ``fresh`` skips the tokens of other threads and of the shared cache.
        """
        with self._token_lock:
            ref = self.plugin.auth_ref
            if not fresh and ref is not None and ref.auth_token != rejected:
                return str(ref.auth_token), False  # another thread already renewed it
            logged_in = fresh or not self._adopt_cached(unless_token=rejected)
            if logged_in:
                self._authenticate()
            ref = self.plugin.auth_ref
            assert ref is not None
            return str(ref.auth_token), logged_in

    def forget_token(self) -> None:
        """Drop the token here and in the shared cache (e.g. after the user's password changed)."""
        with self._token_lock:
            self.plugin.invalidate()
            if self._cache_key:
                self.shared.token_cache.delete(self._cache_key)

    def access(self) -> Any:
        """keystoneauth's AccessInfo for the current token."""
        self.token()
        return self.plugin.auth_ref

    # --- endpoints ----------------------------------------------------------------------

    def endpoint(self, service: str) -> str:
        override = self.config.endpoint_overrides.get(service)
        if override:
            return normalise_endpoint(service, override)
        # The catalog of the token in hand serves even if that token is about to be renewed.
        ref = self.plugin.auth_ref or self.access()
        try:
            url = ref.service_catalog.url_for(
                service_type=service,
                interface=self.config.interface,
                region_name=self.config.region_name,
            )
        except ks_exc.EndpointNotFound as exc:
            raise EndpointNotFound(
                f"no {self.config.interface} {service} endpoint"
                + (f" in region {self.config.region_name}" if self.config.region_name else "")
                + " in the service catalog"
            ) from exc
        if not url:
            raise EndpointNotFound(f"no {service} endpoint in the service catalog")
        return normalise_endpoint(service, url)

    # --- requests -----------------------------------------------------------------------

    def _should_retry(self, error: OpenStackError, attempt: int, *, idempotent: bool) -> bool:
        if not idempotent or attempt >= self.config.retries:
            return False
        if error.status is None:
            return isinstance(error, Unavailable)
        return error.status in RETRY_STATUSES

    def _backoff(self, attempt: int, method: str, path: str, error: OpenStackError) -> None:
        delay = min(self.config.backoff_cap, 0.25 * (2**attempt))
        log.warning("%s %s failed (%s); retry %d in %.2fs", method, path, error, attempt + 1, delay)
        self.shared.sleep(delay)

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
    ) -> requests.Response:
        """One call, with the token, retries (idempotent calls only) and typed errors.

        ``idempotent`` defaults to True for GET/HEAD/DELETE; a POST is never retried because the
        service may have acted on it before the connection broke.
        """
        token = self.token() if authenticated else ""
        url = path if path.startswith("http") else self.endpoint(service) + path
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        all_headers = {"Accept": "application/json"}
        all_headers.update(headers or {})
        renewed = logged_in_afresh = False
        attempt = 0
        while True:
            _guard(method)
            if authenticated:
                all_headers["X-Auth-Token"] = token
            try:
                with _calling_service(service):
                    response = self.session.request(
                        url,
                        method,
                        params=params,
                        json=json,
                        headers=all_headers,
                        authenticated=False,
                        raise_exc=False,
                        connect_retries=0,
                        log=False,
                    )
            except ks_exc.ClientException as exc:
                error = map_keystoneauth_error(exc, method, url)
                log.warning("%s %s failed: %s", method, urlsplit(url).path, error.message)
                if not self._should_retry(error, attempt, idempotent=idempotent):
                    raise error from exc
                self._backoff(attempt, method, urlsplit(url).path, error)
                attempt += 1
                continue
            if response.status_code == 401 and authenticated and not logged_in_afresh:
                # Revoked or expired early. A token taken from another thread or the shared
                # cache may predate the same revocation: its 401 leads to a login of our own,
                # and a 401 after that login is final.
                token, logged_in_afresh = self._renew_after_401(token, fresh=renewed)
                renewed = True
                continue
            if response.status_code < 400:
                return response
            error = error_from_response(response, method)
            if method == "DELETE" and attempt > 0 and isinstance(error, NotFound):
                # An earlier attempt deleted it and only the answer was lost.
                return response
            if not self._should_retry(error, attempt, idempotent=idempotent):
                raise error
            self._backoff(attempt, method, urlsplit(url).path, error)
            attempt += 1

    def get_json(self, service: str, path: str, **kwargs: Any) -> Any:
        return self.request(service, "GET", path, **kwargs).json()

    def paginate(
        self,
        service: str,
        path: str,
        key: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following each service's next link to the end.

        Only the next link's query string is used, against our own endpoint: catalogs and links
        can name hosts the portal cannot reach (the seed's links point at a bare IP).

        With ``page_size``, each call asks for one item more than a page: Nova, Neutron and
        Keystone give a next link whenever a page is full, even if nothing follows, so a list
        of exactly N pages would cost an extra empty call. The extra item only says "more
        follow"; the next page starts after the page's last item. N items cost ceil(N/page).
        """
        base: list[tuple[str, Any]] = [(k, v) for k, v in (params or {}).items() if v is not None]
        query = list(base)
        if page_size is not None:
            query.append(("limit", page_size + 1))
        seen: set[tuple[tuple[str, Any], ...]] = set()
        for _page in range(MAX_PAGES):
            body = self.get_json(service, path, params=query, headers=headers)
            items = body.get(key) or []
            if page_size is not None and len(items) > page_size:
                yield from items[:page_size]
                marker = items[page_size - 1]["id"]
                query = [*base, ("limit", page_size + 1), ("marker", marker)]
                continue
            yield from items
            if body.get("truncated"):
                log.warning("%s list was truncated by the server's list_limit", key)
            next_href = _next_link(body, key)
            if not next_href:
                return
            # With page_size, only reached when the server clamped the page to its own
            # maximum; from here on its links lead.
            next_query = parse_qsl(urlsplit(next_href).query, keep_blank_values=True)
            present = {k for k, _ in next_query}
            next_query += [(k, v) for k, v in base if k not in present]
            signature = tuple(sorted(next_query))
            if signature in seen:
                raise IncompleteListing(f"{path}: the next link repeats itself")
            seen.add(signature)
            query = next_query
        raise IncompleteListing(f"{path}: more than {MAX_PAGES} pages")

    # --- compute microversion -------------------------------------------------------------

    def compute_microversion(self) -> Microversion | None:
        """The negotiated compute microversion (None: the server has none, 2.1 applies)."""
        base = self.endpoint("compute")
        shared = self.shared
        with shared.lock:
            if base in shared.compute_versions:
                return shared.compute_versions[base]
        chosen = self._negotiate_compute(base)
        with shared.lock:
            shared.compute_versions[base] = chosen
        return chosen

    def _negotiate_compute(self, base: str) -> Microversion | None:
        ceiling = COMPUTE_MAX_MICROVERSION
        if self.config.compute_max_microversion:
            ceiling = Microversion.parse(self.config.compute_max_microversion)
        try:
            document = self.get_json("compute", base + "/")
        except OpenStackError as exc:
            log.warning("compute version discovery failed (%s); using 2.1", exc)
            return None
        version = document.get("version")
        if not isinstance(version, dict):
            versions = document.get("versions") or []
            version = next((v for v in versions if v.get("status") == "CURRENT"), None)
        if not version or not version.get("version"):
            log.info("compute offers no microversions; using 2.1")
            return None
        server_max = Microversion.parse(version["version"])
        server_min = Microversion.parse(version.get("min_version") or "2.1")
        chosen = server_max if server_max < ceiling else ceiling
        if chosen < server_min:
            log.warning("compute needs at least %s, client supports up to %s", server_min, ceiling)
            chosen = server_min
        if chosen < COMPUTE_WANTED_MICROVERSION:
            log.warning(
                "compute microversion %s in use (server offers %s-%s): below %s, servers "
                "report their flavor by id only",
                chosen,
                server_min,
                server_max,
                COMPUTE_WANTED_MICROVERSION,
            )
        else:
            log.info(
                "compute microversion %s in use (server offers %s-%s)",
                chosen,
                server_min,
                server_max,
            )
        return chosen

    def compute_headers(self) -> dict[str, str]:
        version = self.compute_microversion()
        if version is None:
            return {}
        return {
            "OpenStack-API-Version": f"compute {version}",
            "X-OpenStack-Nova-API-Version": str(version),
        }


def _next_link(body: Mapping[str, Any], key: str) -> str | None:
    """The next page's URL in whichever form the service uses."""
    links = body.get(f"{key}_links")  # Nova, Neutron
    if isinstance(links, list):
        for link in links:
            if link.get("rel") == "next" and link.get("href"):
                return str(link["href"])
        return None
    collection_links = body.get("links")  # Keystone
    if isinstance(collection_links, dict):
        nxt = collection_links.get("next")
        return str(nxt) if nxt else None
    nxt = body.get("next")  # Glance, relative
    return str(nxt) if isinstance(nxt, str) and nxt else None
