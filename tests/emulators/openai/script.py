"""The scripted model: a pure function from a transcript and the offered tools to a *plan*.

Nothing here knows about HTTP, SSE or any API's JSON. Front ends (the Responses API in
`responses.py`, an Assistants v2 threads/runs renderer later) normalise their request
into a transcript, call `plan_reply`, and render the plan into their own wire events.

Transcript (input)
------------------
A sequence of `Entry`, oldest first:

- `Message(role, texts, images, files, current)`: a chat message. `texts` are its text
  parts, `images` the number of image parts, `files` the file ids of attached files.
- `ToolCall(call_id, name, arguments, current)`: a function call the model made earlier.
- `ToolResult(call_id, output, current)`: the client's answer to such a call.

`current=True` marks entries that arrived with the request being answered (as opposed
to context already stored server-side). The offered tools are a `Toolbox`: function
names, the files searchable by file_search (already resolved to completed files, with
their text), and whether a code interpreter is available and which files it mounts.

Plan (output)
-------------
`Plan(steps, failure, pace_s, stall, cues)`:

- `steps`: output items in order, each one of
  - `Say(chunks, citations)`: an assistant message. `"".join(chunks)` is the text; each
    chunk is one streamed delta. `citations` are `FileCitation(file_id, filename, index)`
    (a file_search hit, cited at character `index`) or `GeneratedFileCitation(filename,
    start, end)` (a file produced by the preceding `RunCode`, cited over text[start:end]).
  - `CallFunction(name, arguments, chunks)`: a function call for the client to run;
    `chunks` are the streamed argument deltas. The turn ends waiting for its result.
  - `SearchFiles(queries, hits)`: a file_search tool call and the files it found.
  - `RunCode(code, chunks, inputs, outputs)`: a code-interpreter call; `inputs` are the
    mounted files it read, `outputs` the `GeneratedFile(filename, content, mime_type)`
    it wrote.
- `failure`: `None`, or `Failure(kind, code, message, after_chunks)`:
  - `kind="model_error"`: the turn is announced, then fails without output (Responses:
    `response.failed`; non-streamed: HTTP 500).
  - `kind="stream_error"`: the steps stream until `after_chunks` deltas (of any kind)
    have been sent, then the transport-level stream breaks with an error event and
    nothing is kept (non-streamed: HTTP 500).
- `pace_s`: seconds to wait between consecutive deltas (0 = as fast as possible).
- `stall`: pause right after the turn is announced until the test releases it.
- `cues`: the cue names found (informational, e.g. for logging).

Behaviour
---------
Default reply: ``echo: <T> [user messages: N]`` where T is the text parts of the current
user messages joined with " | " and N counts every user message in the transcript.
` [images: K]` / ` [files: K]` are appended when the current user messages carry image
or file parts, and ` [csv: a.csv, …]` when the code interpreter mounts CSV files.
Cues in the last current user text: ``#fail``, ``#stream-error``, ``#slow``, ``#stall``,
``#long:N``, ``#markdown``, ``#tool:NAME {json}``, ``#chart``, ``#cite`` (or a ``?``
when file_search has completed files). A current `ToolResult` takes precedence over
everything: the reply is ``tool NAME said: <output>``.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

# --------------------------------------------------------------------------- transcript


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant" | "system" | "developer"
    texts: tuple[str, ...] = ()
    images: int = 0
    files: tuple[str, ...] = ()
    current: bool = False

    @property
    def text(self) -> str:
        return " | ".join(self.texts)


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str
    current: bool = False


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    output: str
    current: bool = False


@dataclass(frozen=True)
class ApprovalRequest:
    """An `mcp_approval_request` the model made earlier (stored in the conversation)."""

    id: str
    server: str
    name: str
    arguments: str
    current: bool = False


@dataclass(frozen=True)
class ApprovalResponse:
    """The client's `mcp_approval_response` to such a request."""

    request_id: str
    approve: bool
    current: bool = False


Entry = Message | ToolCall | ToolResult | ApprovalRequest | ApprovalResponse


@dataclass(frozen=True)
class SearchableFile:
    file_id: str
    filename: str
    text: str


@dataclass(frozen=True)
class MountedFile:
    file_id: str
    filename: str


@dataclass(frozen=True)
class McpServer:
    label: str
    url: str
    allowed_tools: tuple[str, ...] | None = None
    approval: str | dict[str, object] = "always"

    def needs_approval(self, tool: str) -> bool:
        if isinstance(self.approval, str):
            return self.approval != "never"
        never = self.approval.get("never")
        names = never.get("tool_names", []) if isinstance(never, dict) else []
        return tool not in names


@dataclass(frozen=True)
class Toolbox:
    functions: frozenset[str] = frozenset()
    file_search: bool = False
    searchable: tuple[SearchableFile, ...] = ()
    code_interpreter: bool = False
    mounted: tuple[MountedFile, ...] = ()
    web_search: bool = False
    web_domains: tuple[str, ...] = ()  # filters.allowed_domains; empty = the whole web
    mcp: tuple[McpServer, ...] = ()


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class FileCitation:
    file_id: str
    filename: str
    index: int


@dataclass(frozen=True)
class GeneratedFileCitation:
    filename: str
    start: int
    end: int


@dataclass(frozen=True)
class UrlCitation:
    url: str
    title: str
    start: int
    end: int


Citation = FileCitation | GeneratedFileCitation | UrlCitation


@dataclass(frozen=True)
class Say:
    chunks: tuple[str, ...]
    citations: tuple[Citation, ...] = ()

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@dataclass(frozen=True)
class CallFunction:
    name: str
    arguments: str
    chunks: tuple[str, ...]


@dataclass(frozen=True)
class SearchFiles:
    queries: tuple[str, ...]
    hits: tuple[SearchableFile, ...]


@dataclass(frozen=True)
class GeneratedFile:
    filename: str
    content: bytes
    mime_type: str


@dataclass(frozen=True)
class RunCode:
    code: str
    chunks: tuple[str, ...]
    inputs: tuple[MountedFile, ...]
    outputs: tuple[GeneratedFile, ...]


@dataclass(frozen=True)
class WebPage:
    url: str
    title: str


@dataclass(frozen=True)
class SearchWeb:
    query: str
    pages: tuple[WebPage, ...]


@dataclass(frozen=True)
class ListMcpTools:
    server: str
    tools: tuple[str, ...]
    error: str = ""


@dataclass(frozen=True)
class CallMcp:
    server: str
    name: str
    arguments: str
    output: str


@dataclass(frozen=True)
class AskApproval:
    """An `mcp_approval_request`: the response ends, waiting for the client's decision."""

    server: str
    name: str
    arguments: str


Step = Say | CallFunction | SearchFiles | RunCode | SearchWeb | ListMcpTools | CallMcp | AskApproval


@dataclass(frozen=True)
class Failure:
    kind: Literal["model_error", "stream_error"]
    code: str
    message: str
    after_chunks: int = 0


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    failure: Failure | None = None
    pace_s: float = 0.0
    stall: bool = False
    cues: frozenset[str] = field(default_factory=frozenset)
    first_delay_s: float = 0.0  # model "thinking" before its first delta (``#pace``)

    @property
    def text(self) -> str:
        return "".join(step.text for step in self.steps if isinstance(step, Say))


SLOW_PACE_S = 0.1
MODEL_FAILURE = "The model failed to respond."
STREAM_FAILURE = "stream broke"

_TOOL_CUE = re.compile(r"#tool:([A-Za-z0-9_.-]+)")
# #mcp:LABEL.TOOL {json}: call TOOL on the MCP server LABEL (a server whose URL says "broken" fails).
_MCP_CUE = re.compile(r"#mcp:([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_LONG_CUE = re.compile(r"#long:(\d+)")
# #pace:FIRST_MS:DELTAS:GAP_MS — a load profile: wait, then DELTAS deltas GAP_MS apart.
_PACE_CUE = re.compile(r"#pace:(\d+):(\d+):(\d+)")
PACE_WORD = "word "


def plan_reply(transcript: Sequence[Entry], tools: Toolbox) -> Plan:
    """Decide the model's next turn. Deterministic: same input, same plan."""
    current_users = [e for e in transcript if isinstance(e, Message) and e.current and e.role == "user"]
    last_text = current_users[-1].text if current_users else ""
    cues = _cues(last_text)
    pace = SLOW_PACE_S if "slow" in cues else 0.0
    stall = "stall" in cues

    def plan(*steps: Step, failure: Failure | None = None) -> Plan:
        return Plan(steps, failure, pace, stall, frozenset(cues))

    answers = [e for e in transcript if isinstance(e, ApprovalResponse) and e.current]
    if answers:
        return plan(*_answer_approvals(transcript, answers))

    results = [e for e in transcript if isinstance(e, ToolResult) and e.current]
    if results:
        names = {e.call_id: e.name for e in transcript if isinstance(e, ToolCall)}
        text = " | ".join(f"tool {names.get(r.call_id, 'unknown')} said: {r.output}" for r in results)
        return plan(Say(split_chunks(text)))

    if "fail" in cues:
        return plan(failure=Failure("model_error", "server_error", MODEL_FAILURE))

    echo = _echo(transcript, current_users, tools)
    broken = Failure("stream_error", "server_error", STREAM_FAILURE, after_chunks=2)
    failure = broken if "stream-error" in cues else None

    tool_cue = _TOOL_CUE.search(last_text)
    if tool_cue and tool_cue.group(1) in tools.functions:
        arguments = _json_after(last_text, tool_cue.end())
        call = CallFunction(tool_cue.group(1), arguments, split_chunks(arguments, pieces=3))
        return plan(call, failure=failure)

    mcp_cue = _MCP_CUE.search(last_text)
    servers = {server.label: server for server in tools.mcp}
    if mcp_cue and mcp_cue.group(1) in servers:
        server = servers[mcp_cue.group(1)]
        arguments = _json_after(last_text, mcp_cue.end())
        return plan(*_use_mcp(server, mcp_cue.group(2), arguments), failure=failure)

    if "chart" in cues and tools.code_interpreter:
        return plan(*_chart(tools), failure=failure)

    if "web" in cues and tools.web_search:
        return plan(*_search_web(last_text, tools), failure=failure)

    if tools.searchable and ("cite" in cues or "?" in last_text):
        return plan(*_search(echo, last_text, tools), failure=failure)

    paced = _PACE_CUE.search(last_text)
    if paced:
        first_ms, count, gap_ms = (int(g) for g in paced.groups())
        chunks = (*tuple(PACE_WORD for _ in range(count - 1)), PACE_WORD.strip() + ".")
        return Plan((Say(chunks),), failure, gap_ms / 1000, stall, frozenset(cues), first_ms / 1000)

    if "long" in cues:
        match = _LONG_CUE.search(last_text)
        assert match is not None
        return plan(Say(split_chunks(long_text(int(match.group(1))))), failure=failure)

    if "markdown" in cues:
        return plan(Say(split_chunks(MARKDOWN_REPLY)), failure=failure)

    return plan(Say(split_chunks(echo)), failure=failure)


def _cues(text: str) -> set[str]:
    found = {
        c
        for c in ("fail", "stream-error", "slow", "stall", "markdown", "chart", "cite", "web")
        if _has(text, c)
    }
    if _LONG_CUE.search(text):
        found.add("long")
    if _TOOL_CUE.search(text):
        found.add("tool")
    return found


def _has(text: str, cue: str) -> bool:
    # "#fail" must not fire on "#failover", nor "#stream" on "#stream-error".
    return re.search(rf"#{re.escape(cue)}(?![\w-])", text) is not None


def _echo(transcript: Sequence[Entry], current_users: list[Message], tools: Toolbox) -> str:
    texts = [t for m in current_users for t in m.texts]
    n = sum(1 for e in transcript if isinstance(e, Message) and e.role == "user")
    reply = f"echo: {' | '.join(texts)} [user messages: {n}]"
    images = sum(m.images for m in current_users)
    if images:
        reply += f" [images: {images}]"
    files = sum(len(m.files) for m in current_users)
    if files:
        reply += f" [files: {files}]"
    csvs = _csv_names(tools)
    if csvs:
        reply += f" [csv: {', '.join(csvs)}]"
    return reply


def _csv_names(tools: Toolbox) -> list[str]:
    if not tools.code_interpreter:
        return []
    return [f.filename for f in tools.mounted if f.filename.lower().endswith(".csv")]


def _json_after(text: str, start: int) -> str:
    """The JSON object written after a `#tool:NAME` cue, re-serialised; "{}" when absent."""
    rest = text[start:].lstrip()
    if rest.startswith("{"):
        try:
            value, _ = json.JSONDecoder().raw_decode(rest)
        except ValueError:
            return "{}"
        return json.dumps(value)
    return "{}"


def _search(echo: str, query: str, tools: Toolbox) -> tuple[Step, ...]:
    text = echo + "\n"
    citations: list[Citation] = []
    for hit in tools.searchable:
        text += f"\nFrom {hit.filename}: {first_line(hit.text)}"
        citations.append(FileCitation(hit.file_id, hit.filename, len(text)))
    return (
        SearchFiles((query,), tools.searchable),
        Say(split_chunks(text), tuple(citations)),
    )


def mcp_output(name: str, arguments: str) -> str:
    return f"{name} ran with {arguments}"


def _use_mcp(server: McpServer, name: str, arguments: str) -> tuple[Step, ...]:
    if "broken" in server.url:
        error = f"Error retrieving tool list from MCP server: '{server.label}'. Http status code: 424"
        sorry = Say(split_chunks(f"I could not reach {server.label}."))
        return (ListMcpTools(server.label, (), error), sorry)
    listing = ListMcpTools(server.label, server.allowed_tools or (name,))
    if server.allowed_tools is not None and name not in server.allowed_tools:
        return (listing, Say(split_chunks(f"{server.label} does not let me use {name}.")))
    if server.needs_approval(name):
        return (listing, AskApproval(server.label, name, arguments))
    output = mcp_output(name, arguments)
    text = f"mcp {name} said: {output}"
    return (listing, CallMcp(server.label, name, arguments, output), Say(split_chunks(text)))


def _answer_approvals(transcript: Sequence[Entry], answers: list[ApprovalResponse]) -> tuple[Step, ...]:
    asked = {e.id: e for e in transcript if isinstance(e, ApprovalRequest)}
    steps: list[Step] = []
    said: list[str] = []
    for answer in answers:
        request = asked[answer.request_id]  # the emulator refuses unknown ids before planning
        if answer.approve:
            output = mcp_output(request.name, request.arguments)
            steps.append(CallMcp(request.server, request.name, request.arguments, output))
            said.append(f"mcp {request.name} said: {output}")
        else:
            said.append(f"mcp {request.name} was not approved, so I did not run it")
    return (*steps, Say(split_chunks(" | ".join(said))))


WEB_PAGES = (
    WebPage("https://docs.example.com/guide", "The Example Guide"),
    WebPage("https://news.example.org/today", "Example News"),
)


def _search_web(query: str, tools: Toolbox) -> tuple[Step, ...]:
    """A web search whose pages (limited to the allowed domains) are cited in the answer."""
    pages = tuple(
        p
        for p in WEB_PAGES
        if not tools.web_domains
        or any(p.url.split("/")[2] == d or p.url.split("/")[2].endswith("." + d) for d in tools.web_domains)
    )
    text = "From the web:"
    citations: list[Citation] = []
    for page in pages:
        text += " "
        start = len(text)
        text += page.title
        citations.append(UrlCitation(page.url, page.title, start, len(text)))
    return (SearchWeb(query, pages), Say(split_chunks(text), tuple(citations)))


def _chart(tools: Toolbox) -> tuple[Step, ...]:
    csvs = [f for f in tools.mounted if f.filename.lower().endswith(".csv")]
    source = csvs[0].filename if csvs else None
    code = (
        "import matplotlib.pyplot as plt\n"
        + (f"import pandas as pd\ndf = pd.read_csv('/mnt/data/{source}')\n" if source else "")
        + "plt.bar(['a', 'b', 'c'], [3, 1, 2])\n"
        + "plt.savefig('/mnt/data/chart.png')\n"
    )
    link = "[chart.png](sandbox:/mnt/data/chart.png)"
    lead = f"Here is the chart from {source}: " if source else "Here is the chart: "
    text = lead + link
    return (
        RunCode(
            code,
            split_chunks(code, pieces=3),
            tuple(csvs),
            (GeneratedFile("chart.png", tiny_png(), "image/png"),),
        ),
        Say(split_chunks(text), (GeneratedFileCitation("chart.png", len(lead), len(text)),)),
    )


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


MAX_DELTA_CHARS = 400


def split_chunks(text: str, pieces: int = 8) -> tuple[str, ...]:
    """Split at word boundaries into about `pieces` deltas (at least 2 when possible).

    Long texts get more pieces, none much over MAX_DELTA_CHARS: clients must cope with
    many small deltas (the real API sends roughly one per token).
    """
    if not text:
        return ("",)
    words = re.findall(r"\S+\s*|\s+", text)
    target = max(1, min(-(-len(text) // pieces), MAX_DELTA_CHARS))
    chunks: list[str] = []
    current = ""
    for word in words:
        current += word
        if len(current) >= target:
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    if len(chunks) == 1 and len(text) > 1:
        # A single long word still streams as more than one delta.
        half = len(text) // 2
        chunks = [text[:half], text[half:]]
    return tuple(chunks)


MARKDOWN_REPLY = (
    "# Summary\n\n"
    "This is **bold**, this is _italic_, and here is a [link](https://example.com).\n\n"
    "- first point\n"
    "- second point with `inline code`\n"
    "- third point\n\n"
    "```python\n"
    "def greet(name: str) -> str:\n"
    '    return f"hello {name}"\n'
    "```\n\n"
    "That's all."
)

_FILLER = (
    "The quick brown fox jumps over the lazy dog while the scripted model keeps talking "
    "so that long replies have to be split across several chat messages. "
)

_CODE_BLOCK = (
    "```python\n"
    "def fibonacci(n: int) -> list[int]:\n"
    "    values = [0, 1]\n"
    "    while len(values) < n:\n"
    "        values.append(values[-1] + values[-2])\n"
    "    return values[:n]\n"
    "```"
)


def long_text(n: int) -> str:
    """Exactly `n` characters (when n > ~170) of prose paragraphs around a Python code block."""
    half = max(0, (n - len(_CODE_BLOCK) - 4) // 2)
    before = _paragraphs(half, seed=0)
    after_len = max(0, n - len(before) - len(_CODE_BLOCK) - 4)
    after = _paragraphs(after_len, seed=1)
    parts = [p for p in (before, _CODE_BLOCK, after) if p]
    return "\n\n".join(parts)


def _paragraphs(length: int, seed: int) -> str:
    """Exactly `length` characters of prose, broken into paragraphs of ~400 chars."""
    if length <= 0:
        return ""
    text = ""
    number = seed * 100
    while len(text) < length:
        number += 1
        paragraph = f"Paragraph {number}. " + _FILLER * 3
        text += ("\n\n" if text else "") + paragraph.strip()
    text = text[:length]
    # Never end on whitespace: Slack trims it and the length would drift.
    return text[:-1] + "." if text[-1].isspace() else text


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A small, valid PNG (a three-bar chart) built without imaging libraries."""
    bars = [(2, 8, 14), (9, 15, 4), (16, 22, 9)]  # (x0, x1, top y)
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            inside = any(x0 <= x < x1 and y >= top for x0, x1, top in bars)
            rows.extend((40, 90, 200) if inside else (255, 255, 255))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )
