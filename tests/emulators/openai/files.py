"""/v1/files, /v1/vector_stores (files, file batches) and /v1/containers/{id}/files."""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .errors import ApiError, not_found
from .pages import list_page
from .state import RECORDED, StoredFile, VectorStore, VectorStoreFileState, new_id, now

if TYPE_CHECKING:
    from .emulator import OpenAIEmulator

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# A widely used self-hosted OpenAI-compatible server takes only these.
COMPATIBLE_PURPOSES = ("assistants", "batch")


def routes(emu: OpenAIEmulator) -> list[web.RouteDef]:
    # ------------------------------------------------------------------ files

    def stored_file(file_id: str) -> StoredFile:
        found = emu.files.get(file_id)
        if found is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return found

    async def upload(request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise ApiError(400, "Expected a multipart/form-data body with 'file' and 'purpose'.")
        fields: dict[str, str] = {}
        filename: str | None = None
        content = b""
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                filename = part.filename or "upload"
                content = await part.read(decode=False)
            elif part.name:
                fields[part.name] = await part.text()
        request[RECORDED].json = {
            **fields,
            "file": {"filename": filename, "bytes": len(content)} if filename is not None else None,
        }
        if filename is None:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        purpose = fields.get("purpose")
        if purpose is None:
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in emu.file_purposes:
            raise ApiError(
                400,
                f"Invalid value for 'purpose': '{purpose}'. "
                f"Supported values are: {', '.join(emu.file_purposes)}.",
                param="purpose",
                code="invalid_value",
            )
        file = StoredFile(new_id("file", sep="-"), filename, purpose, content)
        emu.files[file.id] = file
        return web.json_response(file.to_json())

    async def list_files(request: web.Request) -> web.Response:
        purpose = request.query.get("purpose")
        files = [f.to_json() for f in emu.files.values() if purpose in (None, f.purpose)]
        return web.json_response(list_page(files, request.query, max_limit=10000))

    async def retrieve_file(request: web.Request) -> web.Response:
        return web.json_response(stored_file(request.match_info["file_id"]).to_json())

    async def delete_file(request: web.Request) -> web.Response:
        file = stored_file(request.match_info["file_id"])
        del emu.files[file.id]
        return web.json_response({"id": file.id, "object": "file", "deleted": True})

    async def file_content(request: web.Request) -> web.Response:
        file = stored_file(request.match_info["file_id"])
        mime = mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
        return web.Response(body=file.content, content_type=mime)

    # ------------------------------------------------------------------ vector stores

    def store(request: web.Request) -> VectorStore:
        vid = request.match_info["vector_store_id"]
        found = emu.vector_stores.get(vid)
        if found is None:
            raise ApiError(404, f"No vector store found with id '{vid}'.", param="vector_store_id")
        return found

    def attach(vs: VectorStore, file_id: Any, attributes: Any = None) -> None:
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(400, "Missing required parameter: 'file_id'.", param="file_id")
        file = emu.files.get(file_id)
        if file is None:
            raise ApiError(404, f"No file found with id '{file_id}'.", param="file_id")
        detail = VectorStoreFileState(attributes=attributes if isinstance(attributes, dict) else None)
        if not file.content or file.filename.lower().endswith(".bin"):
            detail.outcome = "failed"
            detail.last_error = {
                "code": "unsupported_file",
                "message": f"The file type of {file.filename} is not supported for retrieval.",
            }
        vs.details[file_id] = detail
        # Indexing finishes on the emulator's clock: after `indexing_polls` status reads.
        vs.files[file_id] = detail.outcome if emu.indexing_polls <= 0 else "in_progress"

    def file_json(vs: VectorStore, file_id: str, *, status: str | None = None) -> dict[str, Any]:
        file = emu.files.get(file_id)
        data = vs.file_json(file_id, usage_bytes=len(file.content) if file else 0)
        if status is not None:
            data["status"] = status
            if status != "failed":
                data["last_error"] = None
        return data

    def vs_file_id(vs: VectorStore, request: web.Request) -> str:
        file_id = request.match_info["file_id"]
        if file_id not in vs.files:
            raise ApiError(
                404, f"No file found with id '{file_id}' in vector store '{vs.id}'.", param="file_id"
            )
        return file_id

    async def create_store(request: web.Request) -> web.Response:
        body = emu.body(request)
        vs = VectorStore(
            new_id("vs"),
            name=str(body.get("name") or ""),
            metadata=dict(body.get("metadata") or {}),
            expires_after=body.get("expires_after"),
        )
        for file_id in body.get("file_ids") or []:
            attach(vs, file_id)
        emu.vector_stores[vs.id] = vs
        return web.json_response(vs.to_json())

    async def list_stores(request: web.Request) -> web.Response:
        return web.json_response(
            list_page([vs.to_json() for vs in emu.vector_stores.values()], request.query)
        )

    async def retrieve_store(request: web.Request) -> web.Response:
        return web.json_response(store(request).to_json())

    async def update_store(request: web.Request) -> web.Response:
        vs = store(request)
        body = emu.body(request)
        if "name" in body and body["name"] is not None:
            vs.name = str(body["name"])
        if "metadata" in body:
            vs.metadata = dict(body["metadata"] or {})
        if "expires_after" in body:
            vs.expires_after = body["expires_after"]
        return web.json_response(vs.to_json())

    async def delete_store(request: web.Request) -> web.Response:
        vs = store(request)
        del emu.vector_stores[vs.id]
        return web.json_response({"id": vs.id, "object": "vector_store.deleted", "deleted": True})

    async def add_file(request: web.Request) -> web.Response:
        vs = store(request)
        body = emu.body(request)
        attach(vs, body.get("file_id"), body.get("attributes"))
        # The real API always answers "in_progress" here; indexing is reported by GETs.
        return web.json_response(file_json(vs, body["file_id"], status="in_progress"))

    async def retrieve_vs_file(request: web.Request) -> web.Response:
        vs = store(request)
        file_id = vs_file_id(vs, request)
        detail = vs.details[file_id]
        if vs.files[file_id] == "in_progress":
            if detail.polls >= emu.indexing_polls:
                vs.files[file_id] = detail.outcome
            else:
                detail.polls += 1
        return web.json_response(
            file_json(vs, file_id), headers={"openai-poll-after-ms": str(emu.poll_after_ms)}
        )

    async def list_vs_files(request: web.Request) -> web.Response:
        vs = store(request)
        wanted = request.query.get("filter")
        files = [file_json(vs, fid) for fid, status in vs.files.items() if wanted in (None, status)]
        return web.json_response(list_page(files, request.query))

    async def update_vs_file(request: web.Request) -> web.Response:
        vs = store(request)
        file_id = vs_file_id(vs, request)
        attributes = emu.body(request).get("attributes")
        vs.details[file_id].attributes = attributes if isinstance(attributes, dict) else None
        return web.json_response(file_json(vs, file_id))

    async def delete_vs_file(request: web.Request) -> web.Response:
        vs = store(request)
        file_id = vs_file_id(vs, request)
        del vs.files[file_id]
        del vs.details[file_id]
        return web.json_response({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})

    async def create_batch(request: web.Request) -> web.Response:
        vs = store(request)
        body = emu.body(request)
        file_ids = list(body.get("file_ids") or [])
        file_ids += [f.get("file_id") for f in body.get("files") or [] if isinstance(f, dict)]
        if not file_ids:
            raise ApiError(400, "Missing required parameter: 'file_ids'.", param="file_ids")
        for file_id in file_ids:
            attach(vs, file_id, body.get("attributes"))
        batch_id = new_id("vsfb")
        emu.file_batches[batch_id] = (vs.id, file_ids, now())
        return web.json_response(batch_json(batch_id, advance=False))

    def batch_json(batch_id: str, *, advance: bool) -> dict[str, Any]:
        vid, file_ids, created_at = emu.file_batches[batch_id]
        vs = emu.vector_stores[vid]
        counts = {s: 0 for s in ("in_progress", "completed", "failed", "cancelled")}
        for file_id in file_ids:
            status = vs.files.get(file_id, "cancelled")
            detail = vs.details.get(file_id)
            if advance and status == "in_progress" and detail is not None:
                if detail.polls >= emu.indexing_polls:
                    status = vs.files[file_id] = detail.outcome
                else:
                    detail.polls += 1
            counts[status] += 1
        return {
            "id": batch_id,
            "object": "vector_store.files_batch",
            "created_at": created_at,
            "vector_store_id": vid,
            "status": "in_progress" if counts["in_progress"] else "completed",
            "file_counts": {**counts, "total": len(file_ids)},
        }

    async def retrieve_batch(request: web.Request) -> web.Response:
        store(request)
        batch_id = request.match_info["batch_id"]
        if batch_id not in emu.file_batches:
            raise not_found("File batch", batch_id)
        return web.json_response(
            batch_json(batch_id, advance=True), headers={"openai-poll-after-ms": str(emu.poll_after_ms)}
        )

    # ------------------------------------------------------------------ containers

    def container_file(request: web.Request) -> tuple[str, Any]:
        cid = request.match_info["container_id"]
        container = emu.containers.get(cid)
        if container is None:
            raise not_found("Container", cid)
        fid = request.match_info["file_id"]
        cfile = container.files.get(fid)
        if cfile is None:
            raise not_found("Container file", fid)
        return cid, cfile

    async def retrieve_container(request: web.Request) -> web.Response:
        cid = request.match_info["container_id"]
        container = emu.containers.get(cid)
        if container is None:
            raise not_found("Container", cid)
        return web.json_response(container.to_json())

    async def list_container_files(request: web.Request) -> web.Response:
        cid = request.match_info["container_id"]
        container = emu.containers.get(cid)
        if container is None:
            raise not_found("Container", cid)
        return web.json_response(list_page([f.to_json() for f in container.files.values()], request.query))

    async def retrieve_container_file(request: web.Request) -> web.Response:
        _, cfile = container_file(request)
        return web.json_response(cfile.to_json())

    async def container_file_content(request: web.Request) -> web.Response:
        _, cfile = container_file(request)
        mime = mimetypes.guess_type(cfile.path)[0] or "application/octet-stream"
        return web.Response(body=cfile.content, content_type=mime)

    vs = "/v1/vector_stores"
    vsf = vs + "/{vector_store_id}/files"
    cf = "/v1/containers/{container_id}/files"
    return [
        web.post("/v1/files", upload),
        web.get("/v1/files", list_files),
        web.get("/v1/files/{file_id}", retrieve_file),
        web.delete("/v1/files/{file_id}", delete_file),
        web.get("/v1/files/{file_id}/content", file_content),
        web.post(vs, create_store),
        web.get(vs, list_stores),
        web.get(vs + "/{vector_store_id}", retrieve_store),
        web.post(vs + "/{vector_store_id}", update_store),
        web.delete(vs + "/{vector_store_id}", delete_store),
        web.post(vsf, add_file),
        web.get(vsf, list_vs_files),
        web.get(vsf + "/{file_id}", retrieve_vs_file),
        web.post(vsf + "/{file_id}", update_vs_file),
        web.delete(vsf + "/{file_id}", delete_vs_file),
        web.post(vs + "/{vector_store_id}/file_batches", create_batch),
        web.get(vs + "/{vector_store_id}/file_batches/{batch_id}", retrieve_batch),
        web.get("/v1/containers/{container_id}", retrieve_container),
        web.get(cf, list_container_files),
        web.get(cf + "/{file_id}", retrieve_container_file),
        web.get(cf + "/{file_id}/content", container_file_content),
    ]
