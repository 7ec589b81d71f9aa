"""inference.GRPCInferenceService: KServe V2 / Open Inference Protocol, as tritonclient speaks it.

ModelInfer goes through CallRunner like every attnserve.v1 call (admission, deadline,
metrics, error codes) and through the same pipelines; the other RPCs only read the
repository, failing as CallRunner.read maps errors (RepositoryIndex lists it; it is static,
so RepositoryModelLoad and RepositoryModelUnload answer UNIMPLEMENTED). Tensors on the
wire: kserve_tensors; the V2 models: kserve_models; each one's tensors to task arguments
and back: kserve_infer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import grpc

from service import version
from service.api.calls import UNKNOWN_MODEL, CallRunner
from service.api.kserve_infer import VIEWS, Call
from service.api.kserve_models import READY, VERSION, Catalogue, V2Name
from service.api.kserve_stats import Counters, Statistics
from service.api.kserve_tensors import (
    int_parameter,
    read_inputs,
    requested_outputs,
    write_outputs,
)
from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.api.protos.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from service.errors import ServiceError
from service.repository import Repository

SERVER_NAME = "attnserve"
# Protocol extensions this servicer implements (Triton's names for them).
EXTENSIONS = ["model_configuration", "statistics", "parameters"]


def _deadline(deadline: float | None, params: Mapping[str, pb.InferParameter]) -> float | None:
    """The earlier of the gRPC deadline and the request's "timeout" (Triton: microseconds)."""
    timeout_us = int_parameter(params, "timeout", 0)
    if timeout_us <= 0:
        return deadline
    limit = time.monotonic() + timeout_us / 1e6
    return limit if deadline is None else min(deadline, limit)


def _duration(ns: int, count: int) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=count, ns=ns)


class KServeServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repository: Repository, calls: CallRunner) -> None:
        self._repo = repository
        self._calls = calls
        self._catalogue = Catalogue(repository)
        self._stats = Statistics()
        self._version = version()

    # -- health -------------------------------------------------------------------------

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        any_ready = any(m.ready for m in self._repo.models.values())
        return pb.ServerReadyResponse(ready=any_ready and not self._calls.draining)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        try:
            self._catalogue.lookup(request.name, request.version)
        except ServiceError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=not self._calls.draining)

    # -- metadata -----------------------------------------------------------------------

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=self._version, extensions=EXTENSIONS
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        def build() -> pb.ModelMetadataResponse:
            v2, model = self._catalogue.lookup(request.name, request.version)
            return self._catalogue.metadata(v2, model)

        return await self._calls.read(context, build)

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        def build() -> pb.ModelConfigResponse:
            v2, model = self._catalogue.lookup(request.name, request.version)
            return pb.ModelConfigResponse(config=self._catalogue.config(v2, model))

        return await self._calls.read(context, build)

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        def build() -> pb.ModelStatisticsResponse:
            if request.name:
                # Counters of a model that is not (or no longer) ready can still be read.
                names = [self._catalogue.check(request.name, request.version).name]
            else:
                names = list(dict.fromkeys([*self._catalogue.names(), *self._stats.names()]))
            return pb.ModelStatisticsResponse(
                model_stats=[_model_stats(name, self._stats.get(name)) for name in names]
            )

        return await self._calls.read(context, build)

    # -- model repository (Triton extension) -----------------------------------------------

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        if request.repository_name:  # as Triton answers: one repository, never named
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"repository_name {request.repository_name!r}: naming a repository is not "
                "supported; leave it empty for the server's one repository",
            )
        models = self._catalogue.index(self._calls.draining)
        if request.ready:
            models = [m for m in models if m.state == READY]
        return pb.RepositoryIndexResponse(models=models)

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _static("load", request.model_name))
        raise AssertionError("abort raises")  # only satisfies the type checker

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, _static("unload", request.model_name))
        raise AssertionError("abort raises")  # only satisfies the type checker

    # -- inference ----------------------------------------------------------------------

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        v2 = V2Name.parse(request.model_name)
        items = 0

        async def work(deadline: float | None) -> pb.ModelInferResponse:
            nonlocal items
            _, model = self._catalogue.lookup(request.model_name, request.model_version)
            view = VIEWS[v2.task]
            wanted = requested_outputs(request, view.outputs(model))
            inputs = read_inputs(request, v2.name, view.inputs(model))
            deadline = _deadline(deadline, request.parameters)
            call = Call(model, inputs, request.parameters, self._repo.limits, deadline)
            outputs = await view.infer(call)
            items = next(iter(outputs.values())).shape[0]
            response = pb.ModelInferResponse(
                model_name=v2.name, model_version=VERSION, id=request.id
            )
            # EXPLANATION comes only with the parameter `explain`; asked for by name without
            # it, it is left out, as load tools that ask for every declared output expect.
            write_outputs(response, [outputs[name] for name in wanted if name in outputs])
            return response

        known = self._catalogue.exists(v2)
        label = v2.model if known else UNKNOWN_MODEL
        started = time.perf_counter_ns()
        ok = False
        try:
            response = await self._calls.run(context, v2.task, label, work)
            ok = True
            return response
        finally:
            if known:  # only our own names: clients cannot grow this table
                self._stats.record(v2.name, ok, time.perf_counter_ns() - started, items)


def _static(action: str, name: str) -> str:
    return (
        f"cannot {action} model {name!r}: the model repository is static; the server loads "
        "every model in its --models folder at start-up (restart it to change them; "
        "RepositoryIndex lists them)"
    )


def _model_stats(name: str, c: Counters) -> pb.ModelStatistics:
    # Every successful request passed the queue and the compute once: perf_analyzer finds
    # the version it drove by the queue count that grew, and wants the compute counts equal.
    # The split of a request's time between queue and compute is not measured per request
    # (attnserve_queue_duration_seconds and attnserve_inference_duration_seconds have it per
    # batch), so compute_infer holds the whole duration and queue none.
    return pb.ModelStatistics(
        name=name,
        version=VERSION,
        last_inference=c.last_inference_ms,
        inference_count=c.inference_count,
        execution_count=c.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(c.success_ns, c.success_count),
            fail=_duration(c.fail_ns, c.fail_count),
            queue=_duration(0, c.success_count),
            compute_input=_duration(0, c.success_count),
            compute_infer=_duration(c.success_ns, c.success_count),
            compute_output=_duration(0, c.success_count),
        ),
    )
