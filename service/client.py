"""Client commands: talk to a running attnserve over gRPC and print the results.

Inputs are read and checked before any call is made; a file that cannot be read or is not
text, or a server that refuses, ends in one line on stderr: exit 2 for what the user must
fix on the command line, 1 for an error status from the server.
"""

from __future__ import annotations

import codecs
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service import explain_view
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc

USAGE_ERROR = 2
SERVER_ERROR = 1
# The services the server reports health for, besides "" (the whole server).
HEALTH_SERVICES = (
    pb.DESCRIPTOR.services_by_name["TextInference"].full_name,
    # KServe V2's, by name: importing its generated module would register the `inference`
    # package, which tritonclient registers too, and a process (a test run that drives
    # tritonclient) cannot hold both.
    "inference.GRPCInferenceService",
)


Metadata = tuple[tuple[str, str], ...]


class UsageError(Exception):
    """Something on the command line (a flag, a file) that the user must fix."""


def read_text(path: str) -> str:
    """A text file (- = stdin) as str: UTF-8 with or without a BOM, or UTF-16 with a BOM.

    The BOM is dropped, so offsets in replies count the text's own characters.
    """
    name = "standard input" if path == "-" else path
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory; give a text file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        if b"\x00" in data:
            raise UsageError(
                f"{name} holds NUL bytes: it is binary or UTF-16 without a byte-order mark; "
                "give UTF-8 text (e.g. iconv -f UTF-16LE -t UTF-8)"
            )
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{name} is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); convert it, e.g. iconv -f LATIN1 -t UTF-8"
        ) from None


def _print(message: Message, as_json: bool, readable: Callable[[Any], str]) -> None:
    if as_json:
        body = MessageToDict(message, always_print_fields_with_no_presence=True)
        print(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        print(readable(message))


def _spans(spans: Any) -> str:
    return "\n".join(f"[{s.score:.3f}] ({s.start}-{s.end}) {s.text}" for s in spans)


CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]


def _read_pem(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from None


def _uses_tls(args: Any) -> bool:
    return bool(args.tls_ca or args.tls_cert)


def _plaintext_token(args: Any) -> bool:
    """A token to send as plain metadata: only when asked for, over plaintext."""
    tls = _uses_tls(args)
    if args.token and not tls and not args.allow_insecure_token:
        raise UsageError(
            "--token needs TLS (--tls-ca): tokens are not sent in plaintext unless "
            "--allow-insecure-token (for a sidecar that terminates TLS)"
        )
    return bool(args.token) and not tls


def channel_credentials(args: Any) -> grpc.ChannelCredentials | None:
    """TLS or mutual-TLS credentials (with the bearer token) as the flags ask; None: plaintext."""
    if _plaintext_token(args) or not _uses_tls(args):
        return None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read_pem(args.tls_ca, "--tls-ca"),
        private_key=_read_pem(args.tls_key, "--tls-key"),
        certificate_chain=_read_pem(args.tls_cert, "--tls-cert"),
    )
    if args.token:
        token = grpc.access_token_call_credentials(args.token)
        credentials = grpc.composite_channel_credentials(credentials, token)
    return credentials


def call_metadata(args: Any) -> Metadata:
    """Metadata for every call: the token itself where the channel cannot carry it (plaintext)."""
    if _plaintext_token(args):
        return (("authorization", f"Bearer {args.token}"),)
    return ()


def open_channel(args: Any) -> grpc.Channel:
    credentials = channel_credentials(args)
    if credentials is None:
        return grpc.insecure_channel(args.target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(args.target, credentials, options=CHANNEL_OPTIONS)


def describe_error(err: grpc.RpcError, args: Any) -> str:
    """`CODE: message`, with what to try where gRPC's own words say little."""
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and details == "Deadline Exceeded":
        details = f"no answer within --timeout {args.timeout:g} s (the client's deadline passed)"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        # The server saw the same deadline first (gRPC sends it along): still the client's.
        details = f"{details} (--timeout {args.timeout:g} s: the client's deadline)"
    elif code == grpc.StatusCode.UNAVAILABLE:
        tls = _uses_tls(args)
        lowered = details.lower()
        if "socket closed" in lowered and not tls:
            details += " (does the server use TLS? then pass --tls-ca CA.pem)"
        elif ("ssl" in lowered or "handshake" in lowered) and tls:
            details += " (is the server plaintext? then drop --tls-ca; or the CA is not its)"
        elif "connect" in lowered:
            details += f" (is attnserve running at --target {args.target}?)"
    elif code == grpc.StatusCode.NOT_FOUND and args.command == "health" and not details:
        known = ", ".join(HEALTH_SERVICES)
        details = (
            f"the server reports no health for service {args.service!r}; ask for '' "
            f"(the whole server) or one of {known}"
        )
    return f"{code.name}: {details}"


def explain_fields(args: Any) -> dict[str, Any]:
    """The request's explain fields. --html, --explain-method and --explain-layer imply
    --explain; --explain-layer picks one layer's attention, so it implies that method too."""
    method = args.explain_method or ""
    if args.explain_layer is not None:
        if method == "rollout":
            raise UsageError(
                "--explain-layer picks one layer's attention: use --explain-method attention"
            )
        method = "attention"
    return {
        "explain": bool(args.explain or args.html or method),
        "explain_method": method,
        "explain_layer": args.explain_layer or 0,
    }


def _check_writable(path: str) -> None:
    """Fail before the call, not after it, if the --html file cannot be written."""
    target = Path(path)
    existed = target.exists()
    try:
        with target.open("a", encoding="utf-8"):  # "a": an existing file keeps its bytes
            pass
    except OSError as exc:
        raise UsageError(f"--html {path}: {exc.strerror or exc}") from None
    if not existed:
        target.unlink(missing_ok=True)


def _explained_source(command: str, request: Any) -> str | list[str]:
    if command == "answer":
        return str(request.context)
    if command == "summarize":
        return str(request.text)
    return list(request.texts)


def show_explanations(args: Any, request: Any, reply: Any) -> int:
    """After the usual output: each explanation over its text, and the --html page.

    Replies with results but no explanations come from a server that ignores explain: exit 1.
    """
    sections = explain_view.sections_for(
        args.command, _explained_source(args.command, request), reply
    )
    if not sections and _RESULTS[args.command](reply):
        print(
            f"attnserve {args.command}: the server sent no explanations (is it older than "
            "explain support?)",
            file=sys.stderr,
        )
        return SERVER_ERROR
    if not args.json:
        colour = explain_view.use_colour(sys.stdout)
        for title, text, explanation in sections:
            print(f"\n{title}\n{explain_view.terminal(text, explanation, colour=colour)}")
    if args.html:
        try:
            Path(args.html).write_text(explain_view.html_page(sections), encoding="utf-8")
        except OSError as exc:
            print(
                f"attnserve {args.command}: --html {args.html}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return USAGE_ERROR
        # stderr: stdout stays the reply (and stays JSON with --json).
        print(f"wrote {len(sections)} explanation(s) to {args.html}", file=sys.stderr)
    return 0


# Whether a reply holds anything to explain (no answer above the threshold: nothing).
_RESULTS: dict[str, Callable[[Any], bool]] = {
    "answer": lambda r: bool(r.answers),
    "summarize": lambda r: bool(r.summary or r.sentences),
    "embed": lambda r: bool(r.embeddings),
}


def run_client(args: Any) -> int:
    """Run one client command; see the module docstring for what fails how."""
    try:
        request = _REQUESTS[args.command](args)
        explain = args.command in _RESULTS and request.explain
        if explain and args.html:
            _check_writable(args.html)
        metadata = call_metadata(args)
        with open_channel(args) as channel:
            try:
                reply = _CALLS[args.command](channel, request, args.timeout, metadata)
            except grpc.RpcError as err:
                print(describe_error(err, args), file=sys.stderr)
                return SERVER_ERROR
    except UsageError as exc:
        print(f"attnserve {args.command}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    _print(reply, args.json, lambda r: _READABLE[args.command](r, args))
    if explain:
        return show_explanations(args, request, reply)
    if args.command == "health":
        return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else SERVER_ERROR
    return 0


def _text_stub(channel: grpc.Channel) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(channel)


_REQUESTS: dict[str, Callable[[Any], Message]] = {
    "summarize": lambda a: pb.SummarizeRequest(
        text=read_text(a.file), model=a.model, max_sentences=a.max_sentences, **explain_fields(a)
    ),
    "answer": lambda a: pb.AnswerRequest(
        question=a.question,
        context=read_text(a.context),
        model=a.model,
        top_k=a.top_k,
        **explain_fields(a),
    ),
    "embed": lambda a: pb.EmbedRequest(
        texts=a.texts, model=a.model, normalize=not a.raw, **explain_fields(a)
    ),
    "generate": lambda a: pb.GenerateRequest(
        prompt=a.prompt,
        model=a.model,
        max_new_tokens=a.max_new_tokens,
        num_beams=a.num_beams,
        temperature=a.temperature,
        top_p=a.top_p,
        seed=a.seed,
        stop=a.stop,
    ),
    "models": lambda a: pb.ListModelsRequest(),
    "health": lambda a: health_pb2.HealthCheckRequest(service=a.service),
}

_CALLS: dict[str, Callable[[grpc.Channel, Any, float, Metadata], Any]] = {
    "summarize": lambda c, r, t, m: _text_stub(c).Summarize(r, timeout=t, metadata=m),
    "answer": lambda c, r, t, m: _text_stub(c).Answer(r, timeout=t, metadata=m),
    "embed": lambda c, r, t, m: _text_stub(c).Embed(r, timeout=t, metadata=m),
    "generate": lambda c, r, t, m: _text_stub(c).Generate(r, timeout=t, metadata=m),
    "models": lambda c, r, t, m: _text_stub(c).ListModels(r, timeout=t, metadata=m),
    "health": lambda c, r, t, m: health_pb2_grpc.HealthStub(c).Check(r, timeout=t, metadata=m),
}


def _readable_embeddings(r: pb.EmbedResponse, args: Any) -> str:
    truncated = set(r.truncated_texts)
    lines = [f"model {r.model}, {r.dimensions} dimensions"]
    for index, (text, e) in enumerate(zip(args.texts, r.embeddings, strict=True)):
        head = ", ".join(f"{v:+.4f}" for v in e.values[:6])
        mark = "  (truncated: embedded from its first tokens only)" if index in truncated else ""
        lines.append(f"[{head}, …]  {text}{mark}")
    if truncated:
        lines.append(
            f"{len(truncated)} of {len(args.texts)} text(s) were longer than the model's "
            "window; only their first tokens were embedded"
        )
    return "\n".join(lines)


def _readable_models(r: pb.ListModelsResponse, _: Any) -> str:
    lines = []
    for m in r.models:
        state = "ready" if m.ready else f"NOT READY: {m.error or 'loading'}"
        default = " (default)" if m.name == r.default_model else ""
        lines.append(
            f"{m.name}{default}: {m.architecture} {m.precision}, {m.dimensions}-d, "
            f"max {m.max_sequence_length} tokens, tasks {', '.join(m.tasks)}, "
            f"on {', '.join(m.providers) or '-'}; {state}"
        )
    return "\n".join(lines) or "(no models)"


_READABLE: dict[str, Callable[[Any, Any], str]] = {
    "summarize": lambda r, _: f"{r.summary}\n\n{_spans(r.sentences)}",
    "answer": lambda r, _: _spans(r.answers) or "(no answer)",
    "embed": _readable_embeddings,
    "generate": lambda r, _: (
        f"{r.text}\n\n({r.model}: {len(r.token_ids)} tokens after a {r.prompt_tokens}-token "
        f"prompt, finished: {r.finish_reason})"
    ),
    "models": _readable_models,
    "health": lambda r, _: health_pb2.HealthCheckResponse.ServingStatus.Name(r.status),
}
