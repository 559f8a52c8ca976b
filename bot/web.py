"""aiohttp routes: Slack events (HTTP mode), health, readiness and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot import metrics
from bot.slack.guard import RequestGuard

Ready = Callable[[], Awaitable[bool]]
Scrape = Callable[[], Awaitable[bytes]]


async def _render() -> bytes:
    return metrics.render()


def build_web_app(
    bolt: AsyncApp | None, ready: Ready, guard: RequestGuard | None = None, scrape: Scrape = _render
) -> web.Application:
    """Routes for one process; /slack/events only when this process is a Slack HTTP edge."""

    async def events(request: web.Request) -> web.Response:
        assert bolt is not None and guard is not None
        verdict = guard.screen(await request.read(), request.headers)
        if verdict is not None:
            return web.Response(status=verdict.status, text=verdict.text)
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if await ready():
            return web.Response(text="ready")
        return web.Response(status=503, text="not ready: redis unreachable")

    async def metrics_route(_: web.Request) -> web.Response:
        return web.Response(body=await scrape(), headers={"Content-Type": metrics.CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_route)
    if bolt is not None:
        app.router.add_post("/slack/events", events)
    return app
