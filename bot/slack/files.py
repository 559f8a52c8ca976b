"""Moving files between Slack and the bot: guarded downloads of shared files, uploads of generated ones.

A download URL comes from an event payload, so it is treated as untrusted input: the bot token
goes only to Slack's own file hosts (or the operator's api_url host), redirects are re-checked
hop by hop, and the body is capped while it streams, whatever the headers claimed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from bot.attachments import FileKind, LocalFile, Rejected, classify, supported_list
from bot.inbound import FileRef, ThreadKey

log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024
# Files in one message are few; the cap keeps a burst of messages from opening dozens of sockets.
MAX_PARALLEL_DOWNLOADS = 4
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_read=30)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Slack's file hosts (files.slack.com, workspace subdomains) and GovSlack's; https on 443 only.
SLACK_HOST_SUFFIXES = (".slack.com", ".slack-gov.com")
HTML_EXTENSIONS = (".html", ".htm")

AUTH_REASON = "Slack didn't let me download it; ask an admin to check the app's files:read scope."
NOT_SLACK_REASON = "its link doesn't point to a Slack file host, so I didn't download it."
REDIRECT_AWAY_REASON = "Slack sent the download somewhere other than Slack, so I stopped."


def file_ref(raw: dict[str, Any]) -> FileRef:
    """The FileRef of a Slack file object (an event's files[] entry or files.info's file)."""
    return FileRef(
        id=str(raw.get("id") or ""),
        name=str(raw.get("name") or raw.get("title") or ""),
        mimetype=str(raw.get("mimetype") or ""),
        filetype=str(raw.get("filetype") or ""),
        size=int(raw.get("size") or 0),
        url=str(raw.get("url_private_download") or raw.get("url_private") or ""),
        needs_info=raw.get("file_access") == "check_file_info",
    )


class FileRefused(Exception):
    """A shared file the bot will not (or could not) take; `rejected` is fit to show the user."""

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(f"{rejected.name}: {rejected.reason}")
        self.rejected = rejected


def _mb(n: int) -> str:
    # A whole-MB limit reads "25 MB", not "25.0 MB"; sizes keep one decimal so 25.3 > 25 is visible.
    value = n / MB
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _display_name(ref: FileRef) -> str:
    if ref.name:
        return ref.name
    # Pasted images can arrive nameless; the filetype still lets classify() see the kind.
    return f"{ref.id}.{ref.filetype}" if ref.filetype else ref.id or "file"


def _is_html(name: str, mimetype: str) -> bool:
    return name.lower().endswith(HTML_EXTENSIONS) or mimetype.split(";")[0].strip() == "text/html"


class SlackFiles:
    """Downloads files shared in Slack (safely) and uploads generated files back to a thread."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        max_bytes: int,
        api_url: str,
        kinds: frozenset[FileKind] = frozenset({FileKind.DOCUMENT, FileKind.IMAGE, FileKind.DATA}),
    ) -> None:
        self._client = client
        self._kinds = kinds
        self._token = client.token or ""
        self._max_bytes = max_bytes
        self._operator_origin = self._origin(api_url)
        self._session: aiohttp.ClientSession | None = None
        self._parallel = asyncio.Semaphore(MAX_PARALLEL_DOWNLOADS)

    # ------------------------------------------------------------------ downloads

    async def fetch(self, ref: FileRef, kinds: frozenset[FileKind] | None = None) -> LocalFile:
        """Download one shared file (of `kinds`, else the configured ones), or raise FileRefused."""
        try:
            return await self._fetch(ref, self._kinds if kinds is None else kinds)
        except FileRefused as refused:
            log.info("not taking Slack file %s: %s", ref.id, refused.rejected.reason)
            raise

    async def fetch_all(
        self, refs: Sequence[FileRef], kinds: frozenset[FileKind] | None = None
    ) -> tuple[list[LocalFile], list[Rejected]]:
        """Download several files concurrently; both lists keep the order of `refs`."""
        results = await asyncio.gather(*(self._fetch_one(ref, kinds) for ref in refs))
        files = [r for r in results if isinstance(r, LocalFile)]
        rejected = [r for r in results if isinstance(r, Rejected)]
        return files, rejected

    async def _fetch_one(self, ref: FileRef, kinds: frozenset[FileKind] | None) -> LocalFile | Rejected:
        async with self._parallel:
            try:
                return await self.fetch(ref, kinds)
            except FileRefused as refused:
                return refused.rejected
            except Exception:
                # One broken file must not sink its siblings or the turn; the traceback still
                # reaches the operator.
                log.exception("unexpected failure downloading Slack file %s", ref.id)
                return Rejected(_display_name(ref), "something went wrong while downloading it.")

    async def _fetch(self, ref: FileRef, kinds: frozenset[FileKind]) -> LocalFile:
        if ref.needs_info:
            ref = await self._resolve(ref)
        name = _display_name(ref)
        kind = classify(name, ref.mimetype)
        if kind is FileKind.UNSUPPORTED:
            raise self._refuse(name, f"I can't read this type of file. I can read: {supported_list()}.")
        if kind not in kinds:
            raise self._refuse(name, f"this bot is set up not to take {kind.value} files.")
        if ref.size > self._max_bytes:
            raise self._refuse(name, f"it is {ref.size / MB:.1f} MB; the limit is {_mb(self._max_bytes)} MB.")
        if not ref.url:
            raise self._refuse(name, "Slack gave me no download link for it.")
        url = self._allowed(ref.url)
        if url is None:
            raise self._refuse(name, NOT_SLACK_REASON)
        content, content_type = await self._download(url, name, ref.mimetype)
        return LocalFile(
            name=name, mimetype=ref.mimetype or content_type, content=content, slack_file_id=ref.id
        )

    async def _resolve(self, ref: FileRef) -> FileRef:
        """Slack Connect stubs carry only an id: files.info has the name, size and URL."""
        name = _display_name(ref)
        try:
            response = await self._client.files_info(file=ref.id)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            raise self._refuse(
                name, f"Slack wouldn't tell me about it ({error or 'unknown error'})."
            ) from None
        info: dict[str, Any] = {"id": ref.id, "name": ref.name, **(response.get("file") or {})}
        return replace(file_ref(info), needs_info=False)

    async def _download(self, url: URL, name: str, mimetype: str) -> tuple[bytes, str]:
        session = self._http()
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        ssl = self._client.ssl if self._client.ssl is not None else True
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with session.get(
                    url, headers=headers, allow_redirects=False, proxy=self._client.proxy, ssl=ssl
                ) as resp:
                    if resp.status in REDIRECT_STATUSES:
                        url = self._next_hop(url, resp, name)
                        continue
                    return await self._read(resp, name, mimetype)
            raise self._refuse(name, "Slack redirected the download too many times.")
        except TimeoutError:
            raise self._refuse(name, "the download timed out.") from None
        except aiohttp.ClientError as exc:
            # The class name is enough to diagnose; aiohttp's text can echo request details.
            log.warning("downloading Slack file %s failed: %s", name, type(exc).__name__)
            raise self._refuse(name, "the download failed (network error).") from None

    def _next_hop(self, url: URL, resp: aiohttp.ClientResponse, name: str) -> URL:
        location = resp.headers.get("Location", "")
        try:
            target = url.join(URL(location)) if location else None
        except ValueError:
            target = None
        if target is None:
            raise self._refuse(name, f"the download failed (HTTP {resp.status} without a location).")
        allowed = self._allowed(str(target))
        if allowed is None:
            log.warning("Slack file %s redirected to a non-Slack host %s; not following", name, target.host)
            raise self._refuse(name, REDIRECT_AWAY_REASON)
        return allowed

    async def _read(self, resp: aiohttp.ClientResponse, name: str, mimetype: str) -> tuple[bytes, str]:
        if resp.status in (404, 410):
            raise self._refuse(name, "Slack says it no longer exists.")
        if resp.status != 200:
            raise self._refuse(name, f"the download failed (HTTP {resp.status}).")
        if resp.content_type == "text/html" and not _is_html(name, mimetype):
            # files.slack.com answers a bad or under-scoped token with a 200 sign-in page.
            log.warning(
                "Slack answered the download of %s with its sign-in page: the bot token is invalid "
                "or lacks the files:read scope",
                name,
            )
            raise self._refuse(name, AUTH_REASON)
        limit = f"it is over the {_mb(self._max_bytes)} MB limit."
        if resp.content_length is not None and resp.content_length > self._max_bytes:
            resp.close()
            raise self._refuse(name, limit)
        body = bytearray()
        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_bytes:
                # close(), not release(): draining the rest is exactly what the cap prevents.
                resp.close()
                raise self._refuse(name, limit)
        return bytes(body), resp.content_type

    # ------------------------------------------------------------------ allowlist

    @staticmethod
    def _origin(raw: str) -> tuple[str, str, int | None] | None:
        try:
            url = URL(raw)
        except ValueError:
            return None
        if not url.absolute or not url.raw_host:
            return None
        return url.scheme.lower(), url.raw_host.lower(), url.port

    def _allowed(self, raw: str) -> URL | None:
        """The URL if the bot token may be sent there, else None."""
        try:
            url = URL(raw)
        except ValueError:
            return None
        if not url.absolute or not url.raw_host or url.raw_user or url.raw_password:
            return None
        scheme, host, port = url.scheme.lower(), url.raw_host.lower(), url.port
        if scheme == "https" and port == 443 and host.endswith(SLACK_HOST_SUFFIXES):
            return url
        if self._operator_origin is not None and (scheme, host, port) == self._operator_origin:
            return url
        return None

    # ------------------------------------------------------------------ uploads

    async def upload(self, key: ThreadKey, *, name: str, content: bytes, title: str | None = None) -> None:
        """Post a generated file into the thread; SlackApiError propagates to the caller."""
        await self._client.files_upload_v2(
            channel=key.channel_id,
            thread_ts=key.thread_ts,
            filename=name,
            content=content,
            title=title or name,
        )
        log.info("uploaded %s (%d bytes) to %s", name, len(content), key)

    # ------------------------------------------------------------------ plumbing

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=DOWNLOAD_TIMEOUT,
                # Cookies set by one download must not ride along on the next.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    @staticmethod
    def _refuse(name: str, reason: str) -> FileRefused:
        return FileRefused(Rejected(name, reason))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
