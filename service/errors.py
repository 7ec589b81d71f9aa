"""Errors a client can cause, each tied to the gRPC status code the contract gives it.

Pipelines and the scheduler raise these; the servicers turn them into statuses in one
place, so the mapping from case to code lives here and nowhere else.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Base: an error whose message is meant for the client."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """Empty text, too many or too long texts, a bad option value."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class TaskNotSupported(ServiceError):
    """The model exists but cannot do the asked task."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class QueueFull(ServiceError):
    """Busy now: the same request may succeed later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class LargerThanQueue(InvalidArgument):
    """The request alone is more than the whole queue holds: no retry can succeed."""


class DeadlineExpired(ServiceError):
    """The client's deadline passed while the work was queued; it was not computed."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(ServiceError):
    """Shutting down, or the model is not ready."""

    code = grpc.StatusCode.UNAVAILABLE
