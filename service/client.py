"""Client commands: talk to a running attnserve over gRPC and print the results."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def _print(message: Message, as_json: bool, readable: Callable[[Any], str]) -> None:
    if as_json:
        body = MessageToDict(message, always_print_fields_with_no_presence=True)
        print(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        print(readable(message))


def _spans(spans: Any) -> str:
    return "\n".join(f"[{s.score:.3f}] ({s.start}-{s.end}) {s.text}" for s in spans)


CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]


def channel_credentials(args: Any) -> grpc.ChannelCredentials | None:
    """TLS or mutual-TLS credentials (with the bearer token) as the flags ask; None: plaintext."""
    if not (args.tls_ca or args.tls_cert):
        if args.token:
            raise SystemExit("--token needs TLS (--tls-ca): tokens are not sent in plaintext")
        return None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(args.tls_ca).read_bytes() if args.tls_ca else None,
        private_key=Path(args.tls_key).read_bytes() if args.tls_key else None,
        certificate_chain=Path(args.tls_cert).read_bytes() if args.tls_cert else None,
    )
    if args.token:
        token = grpc.access_token_call_credentials(args.token)
        credentials = grpc.composite_channel_credentials(credentials, token)
    return credentials


def open_channel(args: Any) -> grpc.Channel:
    credentials = channel_credentials(args)
    if credentials is None:
        return grpc.insecure_channel(args.target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(args.target, credentials, options=CHANNEL_OPTIONS)


def run_client(args: Any) -> int:
    """Run one client command; gRPC errors print `CODE: message` and exit 1."""
    with open_channel(args) as channel:
        stub = pb_grpc.TextInferenceStub(channel)
        try:
            return _COMMANDS[args.command](stub, channel, args)
        except grpc.RpcError as err:
            print(f"{err.code().name}: {err.details()}", file=sys.stderr)
            return 1


def _summarize(stub: pb_grpc.TextInferenceStub, _: grpc.Channel, args: Any) -> int:
    request = pb.SummarizeRequest(
        text=_read(args.file), model=args.model, max_sentences=args.max_sentences
    )
    reply = stub.Summarize(request, timeout=args.timeout)
    _print(reply, args.json, lambda r: f"{r.summary}\n\n{_spans(r.sentences)}")
    return 0


def _answer(stub: pb_grpc.TextInferenceStub, _: grpc.Channel, args: Any) -> int:
    request = pb.AnswerRequest(
        question=args.question, context=_read(args.context), model=args.model, top_k=args.top_k
    )
    reply = stub.Answer(request, timeout=args.timeout)
    _print(reply, args.json, lambda r: _spans(r.answers) or "(no answer)")
    return 0


def _embed(stub: pb_grpc.TextInferenceStub, _: grpc.Channel, args: Any) -> int:
    request = pb.EmbedRequest(texts=args.texts, model=args.model, normalize=not args.raw)
    reply = stub.Embed(request, timeout=args.timeout)

    def readable(r: pb.EmbedResponse) -> str:
        lines = [f"model {r.model}, {r.dimensions} dimensions"]
        for text, e in zip(args.texts, r.embeddings, strict=True):
            head = ", ".join(f"{v:+.4f}" for v in e.values[:6])
            lines.append(f"[{head}, …]  {text}")
        return "\n".join(lines)

    _print(reply, args.json, readable)
    return 0


def _models(stub: pb_grpc.TextInferenceStub, _: grpc.Channel, args: Any) -> int:
    reply = stub.ListModels(pb.ListModelsRequest(), timeout=args.timeout)

    def readable(r: pb.ListModelsResponse) -> str:
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

    _print(reply, args.json, readable)
    return 0


def _health(_: pb_grpc.TextInferenceStub, channel: grpc.Channel, args: Any) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    _print(reply, args.json, lambda _: status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


_COMMANDS: dict[str, Callable[[pb_grpc.TextInferenceStub, grpc.Channel, Any], int]] = {
    "summarize": _summarize,
    "answer": _answer,
    "embed": _embed,
    "models": _models,
    "health": _health,
}
