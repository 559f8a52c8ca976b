"""SlackFiles against the Slack emulator over real HTTP, with the real AsyncWebClient.

Hostile hosts are small aiohttp servers on 127.0.0.1 that count what reaches them, so "no
request was made" is asserted from the server's side rather than inferred from the client's.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.attachments import FileKind, LocalFile, Rejected
from bot.inbound import FileRef, ThreadKey
from bot.slack.files import (
    AUTH_REASON,
    MAX_REDIRECTS,
    MB,
    NOT_SLACK_REASON,
    REDIRECT_AWAY_REASON,
    FileRefused,
    SlackFiles,
    file_ref,
)
from tests.emulators.slack import SlackEmulator

CHANNEL = "C0GENERAL"
LIMIT = 25 * MB
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TinyServer:
    """An HTTP server on 127.0.0.1 that records every request it receives."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[str] = []
        self._handler = handler
        self._runner: web.AppRunner | None = None
        self.origin = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if self._handler is None:
            return web.Response(body=PDF, content_type="application/pdf")
        return await self._handler(request)

    async def start(self) -> TinyServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Awaitable[TinyServer]]]:
    started: list[TinyServer] = []

    async def start(handler: Handler | None = None) -> TinyServer:
        server = await TinyServer(handler).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def make_files(slack: SlackEmulator) -> AsyncIterator[Callable[..., SlackFiles]]:
    made: list[SlackFiles] = []

    def make(*, token: str | None = None, max_bytes: int = LIMIT, api_url: str | None = None) -> SlackFiles:
        client = AsyncWebClient(token=token or slack.bot_token, base_url=slack.api_url)
        files = SlackFiles(client, max_bytes=max_bytes, api_url=api_url or slack.api_url)
        made.append(files)
        return files

    yield make
    for files in made:
        await files.aclose()


@pytest.fixture
def files(make_files: Callable[..., SlackFiles]) -> SlackFiles:
    return make_files()


def ref_of(event_file: dict[str, Any]) -> FileRef:
    """A FileRef as the listeners build it from an event's files[] entry."""
    return file_ref(event_file)


def host_pdf(slack: SlackEmulator, name: str = "report.pdf", **kw: Any) -> FileRef:
    return ref_of(slack.host_file(name, PDF, mimetype="application/pdf", filetype="pdf", **kw))


async def refused(files: SlackFiles, ref: FileRef) -> Rejected:
    with pytest.raises(FileRefused) as caught:
        await files.fetch(ref)
    return caught.value.rejected


# ---------------------------------------------------------------------------- happy paths


async def test_downloads_a_pdf_and_a_png_byte_for_byte(slack: SlackEmulator, files: SlackFiles) -> None:
    pdf_ref = host_pdf(slack)
    png_ref = ref_of(slack.host_file("chart.png", PNG, mimetype="image/png", filetype="png"))

    pdf = await files.fetch(pdf_ref)
    png = await files.fetch(png_ref)

    assert pdf == LocalFile("report.pdf", "application/pdf", PDF, pdf_ref.id)
    assert pdf.kind is FileKind.DOCUMENT
    assert png == LocalFile("chart.png", "image/png", PNG, png_ref.id)
    assert png.kind is FileKind.IMAGE
    assert [(d["file_id"], d["authorized"]) for d in slack.downloads] == [
        (pdf_ref.id, True),
        (png_ref.id, True),
    ]


async def test_check_file_info_stub_is_resolved_through_files_info(
    slack: SlackEmulator, files: SlackFiles
) -> None:
    stub = slack.host_file(
        "connect.pdf", PDF, mimetype="application/pdf", filetype="pdf", file_access="check_file_info"
    )
    ref = ref_of(stub)
    assert ref.needs_info and not ref.name and not ref.url

    got = await files.fetch(ref)

    assert got == LocalFile("connect.pdf", "application/pdf", PDF, ref.id)
    assert slack.calls_to("files.info") == [{"file": ref.id}]
    assert len(slack.downloads) == 1


async def test_check_file_info_failure_is_a_rejection(slack: SlackEmulator, files: SlackFiles) -> None:
    rejected = await refused(files, FileRef(id="F0GONE", needs_info=True))
    assert "file_not_found" in rejected.reason
    assert slack.downloads == []


async def test_fetch_all_keeps_order_of_files_and_rejections(slack: SlackEmulator, files: SlackFiles) -> None:
    refs = [
        host_pdf(slack, "a.pdf"),
        ref_of(slack.host_file("tool.exe", b"MZ", mimetype="application/x-msdownload", filetype="exe")),
        ref_of(slack.host_file("b.png", PNG, mimetype="image/png", filetype="png")),
        host_pdf(slack, "huge.pdf", declared_size=LIMIT + 1),
        ref_of(slack.host_file("c.csv", b"a,b\n1,2\n", mimetype="text/csv", filetype="csv")),
    ]

    got, rejected = await files.fetch_all(refs)

    assert [f.name for f in got] == ["a.pdf", "b.png", "c.csv"]
    assert [f.content for f in got] == [PDF, PNG, b"a,b\n1,2\n"]
    assert [r.name for r in rejected] == ["tool.exe", "huge.pdf"]
    assert sorted(d["file_id"] for d in slack.downloads) == sorted([refs[0].id, refs[2].id, refs[4].id])


async def test_fetch_all_of_nothing(files: SlackFiles) -> None:
    assert await files.fetch_all([]) == ([], [])


# ---------------------------------------------------------------------------- type and size


async def test_unsupported_type_is_rejected_before_download(slack: SlackEmulator, files: SlackFiles) -> None:
    for name, mimetype in [("setup.exe", "application/x-msdownload"), ("bundle.zip", "application/zip")]:
        ref = ref_of(slack.host_file(name, b"PK\x03\x04", mimetype=mimetype, filetype=name[-3:]))
        rejected = await refused(files, ref)
        assert rejected.name == name
        assert rejected.reason.startswith("I can't read this type of file. I can read:")
        assert "pdf" in rejected.reason and "png" in rejected.reason
    assert slack.downloads == []


async def test_declared_oversize_is_rejected_before_download(slack: SlackEmulator, files: SlackFiles) -> None:
    ref = host_pdf(slack, "big.pdf", declared_size=40 * MB)

    rejected = await refused(files, ref)

    assert rejected == Rejected("big.pdf", "it is 40.0 MB; the limit is 25 MB.")
    assert slack.downloads == []


async def test_actual_oversize_is_refused_when_the_host_understated_the_size(
    slack: SlackEmulator, make_files: Callable[..., SlackFiles]
) -> None:
    files = make_files(max_bytes=1000)
    ref = ref_of(
        slack.host_file("big.txt", b"x" * 5000, mimetype="text/plain", filetype="text", declared_size=100)
    )

    rejected = await refused(files, ref)

    assert "over the" in rejected.reason and "limit" in rejected.reason
    assert len(slack.downloads) == 1


async def test_streamed_body_is_cut_off_once_past_the_limit(
    make_files: Callable[..., SlackFiles], servers: Callable[..., Awaitable[TinyServer]]
) -> None:
    """No Content-Length (chunked): the cap has to hold while the bytes arrive."""
    chunk = b"y" * (64 * 1024)
    total_chunks = 2_000  # 128 MiB: far more than the socket buffers could absorb
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(total_chunks):
                await response.write(chunk)
        except BaseException as exc:  # a reset, or a cancellation if the server cancels handlers
            outcome.set_result(f"cut off: {type(exc).__name__}")
            raise
        outcome.set_result("sent everything")
        return response

    server = await servers(endless)
    files = make_files(max_bytes=200 * 1024, api_url=f"{server.origin}/api/")
    ref = FileRef(
        id="F1", name="log.txt", mimetype="text/plain", url=f"{server.origin}/files-pri/T-F1/log.txt"
    )

    rejected = await refused(files, ref)

    assert rejected.reason.startswith("it is over the")
    assert (await asyncio.wait_for(outcome, 30)).startswith("cut off")


async def test_oversize_content_length_is_refused_before_reading_the_body(
    make_files: Callable[..., SlackFiles], servers: Callable[..., Awaitable[TinyServer]]
) -> None:
    """The server announces 100 MB and then stalls: only the header check can answer promptly."""
    release = asyncio.Event()

    async def stalling(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain", "Content-Length": str(100 * MB)})
        await response.prepare(request)
        await response.write(b"z")
        await release.wait()
        return response

    server = await servers(stalling)
    files = make_files(max_bytes=1000, api_url=f"{server.origin}/api/")
    ref = FileRef(id="F1", name="log.txt", mimetype="text/plain", url=f"{server.origin}/log.txt")
    try:
        # A deadline, not a synchronisation: without the header check this would stall.
        with pytest.raises(FileRefused) as caught:
            await asyncio.wait_for(files.fetch(ref), 10)
    finally:
        release.set()
    assert caught.value.rejected.reason.startswith("it is over the")


# ---------------------------------------------------------------------------- host allowlist


@pytest.mark.parametrize(
    "url",
    [
        "http://files.slack.com/files-pri/T0-F1/download/a.pdf",  # right host, wrong scheme
        "ftp://files.slack.com/a.pdf",
        "https://files.slack.com:8443/a.pdf",
        "https://files.slack.com.evil.example/a.pdf",
        "https://evilslack.com/a.pdf",
        "https://slack.com.evil.example/a.pdf",
        "https://user:pw@files.slack.com/a.pdf",
        "/files-pri/T0-F1/a.pdf",
        "http://[::1",
    ],
)
async def test_non_slack_urls_are_rejected_without_a_request(files: SlackFiles, url: str) -> None:
    # Any attempt to connect would end in a network-error reason, not this one.
    rejected = await refused(files, FileRef(id="F1", name="a.pdf", mimetype="application/pdf", url=url))
    assert rejected.reason == NOT_SLACK_REASON


async def test_foreign_host_receives_no_request(
    slack: SlackEmulator, files: SlackFiles, servers: Callable[..., Awaitable[TinyServer]]
) -> None:
    foreign = await servers()
    for url in (
        f"{foreign.origin}/files-pri/T0-F1/a.pdf",
        foreign.origin.replace("http:", "https:") + "/a.pdf",
    ):
        rejected = await refused(files, FileRef(id="F1", name="a.pdf", url=url))
        assert rejected.reason == NOT_SLACK_REASON
    assert foreign.requests == []
    assert slack.downloads == []


async def test_redirect_to_a_foreign_host_is_not_followed(
    make_files: Callable[..., SlackFiles], servers: Callable[..., Awaitable[TinyServer]]
) -> None:
    foreign = await servers()

    async def bounce(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{foreign.origin}/steal{request.path}")

    proxy = await servers(bounce)
    files = make_files(api_url=f"{proxy.origin}/api/")

    rejected = await refused(files, FileRef(id="F1", name="a.pdf", url=f"{proxy.origin}/files-pri/a.pdf"))

    assert rejected.reason == REDIRECT_AWAY_REASON
    assert proxy.requests == ["/files-pri/a.pdf"]
    assert foreign.requests == []


async def test_same_origin_redirects_are_followed_up_to_the_limit(
    make_files: Callable[..., SlackFiles], servers: Callable[..., Awaitable[TinyServer]]
) -> None:
    async def hops(request: web.Request) -> web.StreamResponse:
        left = int(request.query["left"])
        if left == 0:
            return web.Response(body=PDF, content_type="application/pdf")
        raise web.HTTPTemporaryRedirect(f"/f.pdf?left={left - 1}")  # relative, as Location may be

    server = await servers(hops)
    files = make_files(api_url=f"{server.origin}/api/")

    ok = await files.fetch(FileRef(id="F1", name="f.pdf", url=f"{server.origin}/f.pdf?left={MAX_REDIRECTS}"))
    assert ok.content == PDF
    assert len(server.requests) == MAX_REDIRECTS + 1

    server.requests.clear()
    too_many = FileRef(id="F2", name="f.pdf", url=f"{server.origin}/f.pdf?left={MAX_REDIRECTS + 1}")
    rejected = await refused(files, too_many)
    assert "redirected" in rejected.reason
    assert len(server.requests) == MAX_REDIRECTS + 1


# ---------------------------------------------------------------------------- auth and errors


async def test_sign_in_page_means_the_token_cannot_read_files(
    slack: SlackEmulator, make_files: Callable[..., SlackFiles], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "xoxb-wrong-token-0000"
    files = make_files(token=wrong)
    ref = host_pdf(slack)
    caplog.set_level(logging.DEBUG)

    rejected = await refused(files, ref)

    assert rejected == Rejected("report.pdf", AUTH_REASON)
    assert [d["authorized"] for d in slack.downloads] == [False]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "bot.slack.files"]
    assert len(warnings) == 1
    assert "files:read" in warnings[0].getMessage()
    assert wrong not in caplog.text


async def test_html_file_served_as_html_is_not_mistaken_for_the_sign_in_page(
    slack: SlackEmulator, files: SlackFiles
) -> None:
    page = b"<!DOCTYPE html><html><body>notes</body></html>"
    ref = ref_of(slack.host_file("notes.html", page, mimetype="text/html", filetype="html"))
    assert (await files.fetch(ref)).content == page


async def test_missing_file_is_reported_briefly(slack: SlackEmulator, files: SlackFiles) -> None:
    ref = FileRef(
        id="F0GONE", name="gone.pdf", url=f"{slack.base_url}/files-pri/T0TEAM-F0GONE/download/gone.pdf"
    )
    assert (await refused(files, ref)).reason == "Slack says it no longer exists."


async def test_other_statuses_are_reported_with_the_code(
    make_files: Callable[..., SlackFiles], servers: Callable[..., Awaitable[TinyServer]]
) -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="busy")

    server = await servers(broken)
    files = make_files(api_url=f"{server.origin}/api/")
    rejected = await refused(files, FileRef(id="F1", name="a.pdf", url=f"{server.origin}/a.pdf"))
    assert rejected.reason == "the download failed (HTTP 503)."


async def test_the_token_never_leaks_into_logs_reasons_or_errors(
    slack: SlackEmulator,
    make_files: Callable[..., SlackFiles],
    servers: Callable[..., Awaitable[TinyServer]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    foreign = await servers()

    async def bounce(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{foreign.origin}/x")

    proxy = await servers(bounce)
    dead = await servers()
    dead_origin = dead.origin
    await dead.stop()  # nothing listens there any more: a connection error

    good = make_files()
    wrong_token = "xoxb-not-the-right-one-1234"
    wrong = make_files(token=wrong_token)
    via_proxy = make_files(api_url=f"{proxy.origin}/api/")
    via_dead = make_files(api_url=f"{dead_origin}/api/")
    attempts = [
        (good, host_pdf(slack, declared_size=LIMIT * 2)),
        (good, FileRef(id="F1", name="a.exe")),
        (good, FileRef(id="F1", name="a.pdf", url="https://evil.example/a.pdf")),
        (good, FileRef(id="F0NOPE", needs_info=True)),
        (good, FileRef(id="F2", name="a.pdf", url=f"{slack.base_url}/files-pri/T0TEAM-F2/download/a.pdf")),
        (wrong, host_pdf(slack)),
        (via_proxy, FileRef(id="F3", name="a.pdf", url=f"{proxy.origin}/a.pdf")),
        (via_dead, FileRef(id="F4", name="a.pdf", url=f"{dead_origin}/a.pdf")),
    ]
    texts: list[str] = []
    for files, ref in attempts:
        with pytest.raises(FileRefused) as caught:
            await files.fetch(ref)
        texts += [str(caught.value), repr(caught.value), caught.value.rejected.reason]
    _, rejected = await good.fetch_all([ref for _, ref in attempts[:5]])
    texts += [r.reason for r in rejected]

    assert len(rejected) == 5
    assert caplog.records, "the failures above should have been logged"
    for token in (slack.bot_token, wrong_token):
        assert token not in caplog.text
        assert all(token not in text for text in texts)


# ---------------------------------------------------------------------------- uploads


async def test_upload_posts_the_file_into_the_thread(slack: SlackEmulator, files: SlackFiles) -> None:
    root = slack.add_message(CHANNEL, user="U0ALICE", text="make me a chart")
    key = ThreadKey(slack.team_id, CHANNEL, root)
    content = b"month,total\njan,3\nfeb,5\n"

    await files.upload(key, name="totals.csv", content=content, title="Monthly totals")

    [upload] = slack.uploads
    assert upload["content"] == content
    assert upload["filename"] == "totals.csv"
    assert upload["title"] == "Monthly totals"
    assert (upload["channel"], upload["thread_ts"]) == (CHANNEL, root)
    reply = slack.thread(CHANNEL, root)[-1]
    assert reply["ts"] != root and reply["thread_ts"] == root
    assert [f["name"] for f in reply["files"]] == ["totals.csv"]


async def test_upload_title_defaults_to_the_name(slack: SlackEmulator, files: SlackFiles) -> None:
    root = slack.add_message(CHANNEL, user="U0ALICE", text="hi")
    await files.upload(ThreadKey(slack.team_id, CHANNEL, root), name="out.txt", content=b"done")
    assert slack.uploads[0]["title"] == "out.txt"


async def test_upload_errors_propagate(slack: SlackEmulator, files: SlackFiles) -> None:
    root = slack.add_message(CHANNEL, user="U0ALICE", text="hi")
    slack.fail_next("files.completeUploadExternal", error="not_in_channel", status=200, retry_after=None)
    with pytest.raises(SlackApiError) as caught:
        await files.upload(ThreadKey(slack.team_id, CHANNEL, root), name="out.txt", content=b"done")
    assert caught.value.response["error"] == "not_in_channel"
    assert slack.uploads == []


async def test_aclose_is_safe_before_use_and_twice(make_files: Callable[..., SlackFiles]) -> None:
    files = make_files()
    await files.aclose()
    await files.aclose()


async def test_kinds_turned_off_in_configuration_are_refused_before_download(slack: SlackEmulator) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    files = SlackFiles(client, max_bytes=10 * MB, api_url=slack.api_url, kinds=frozenset({FileKind.DOCUMENT}))
    try:
        image = slack.host_file("cat.png", b"\x89PNG", mimetype="image/png", filetype="png")
        with pytest.raises(FileRefused) as err:
            await files.fetch(ref_of(image))
        assert "not to take image files" in err.value.rejected.reason
        assert slack.downloads == []
    finally:
        await files.aclose()
