"""Files to an OpenAI-compatible server: the purpose each upload uses, and images sent inline.

Documents and data files go up with purpose `assistants`: the purpose OpenAI's own file search
and code interpreter guides use, and the one compatible servers accept (a widely used one
takes only `assistants` and `batch`). Images go up with purpose `vision` and are then sent by
file id; a server that refuses that purpose gets them inline as base64 data URLs instead,
downscaled above a configured size. The refusal is learned once per process.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI

from bot.assistant.capabilities import Capabilities
from bot.attachments import LocalFile

log = logging.getLogger(__name__)

# Words shown to users for a file the server did not take.
NOT_TAKEN = "the assistant service would not take it"
UNREADABLE_IMAGE = "it could not be read as an image"
DOCUMENT_PURPOSE = "assistants"
IMAGE_PURPOSE = "vision"
# A 1×1 transparent PNG: what `check` uploads to learn whether the server takes images.
PROBE_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


class UnreadableImage(Exception):
    """The file is not an image Pillow can read (so it cannot be resized to send inline)."""


@dataclass(frozen=True, slots=True)
class ImageInput:
    """How the model gets an image: an uploaded file's id, or the image itself as a data URL."""

    file_id: str = ""
    data_url: str = ""


class Uploads:
    """Uploads for both backends, with the purpose fallbacks a server taught this process."""

    def __init__(self, client: AsyncOpenAI, capabilities: Capabilities, *, inline_max_px: int = 2048) -> None:
        self._client = client
        self._capabilities = capabilities
        self._inline_max_px = inline_max_px

    async def document(self, file: LocalFile) -> str:
        """Upload a document or data file; returns its file id."""
        return await self._upload(file.name, file.content, file.mimetype, DOCUMENT_PURPOSE)

    async def image(self, file: LocalFile) -> ImageInput:
        """Upload an image for vision where the server takes that purpose, else inline it."""
        if self._capabilities.vision_uploads:
            try:
                file_id = await self._upload(file.name, file.content, file.mimetype, IMAGE_PURPOSE)
                return ImageInput(file_id=file_id)
            except openai.BadRequestError as exc:
                if not self._capabilities.learn_purpose(exc, IMAGE_PURPOSE):
                    raise
        return ImageInput(data_url=await asyncio.to_thread(data_url, file.content, self._inline_max_px))

    async def probe(self) -> None:
        """For `check`: learn now whether images can be uploaded (the probe file is deleted)."""
        if not self._capabilities.vision_uploads:
            return
        try:
            file_id = await self._upload("threadbridge-probe.png", PROBE_PNG, "image/png", IMAGE_PURPOSE)
        except openai.BadRequestError as exc:
            self._capabilities.learn_purpose(exc, IMAGE_PURPOSE)
            return
        try:
            await self._client.files.delete(file_id)
        except openai.OpenAIError as exc:
            log.info("could not delete the probe file %s: %s", file_id, type(exc).__name__)

    async def _upload(self, name: str, content: bytes, mimetype: str, purpose: str) -> str:
        uploaded = await self._client.files.create(
            file=(name, content, mimetype or "application/octet-stream"),
            purpose=purpose,  # type: ignore[arg-type]
        )
        return uploaded.id


def data_url(content: bytes, max_px: int) -> str:
    """The image as a data URL, scaled down to `max_px` on its longer side when larger.

    Blocking (Pillow decodes the whole image): run it in a thread.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            fmt = (image.format or "PNG").upper()
            if max(image.size) <= max_px and fmt in ("PNG", "JPEG", "GIF", "WEBP"):
                return _encode(content, fmt)
            image.thumbnail((max_px, max_px))
            opaque = fmt == "JPEG" and image.mode in ("RGB", "L")
            out = io.BytesIO()
            if opaque:
                image.save(out, format="JPEG", quality=85)
            else:
                image.convert("RGBA").save(out, format="PNG", optimize=True)
            return _encode(out.getvalue(), "JPEG" if opaque else "PNG")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableImage(str(exc)) from None


def _encode(content: bytes, fmt: str) -> str:
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(content).decode('ascii')}"
