"""Errors the emulated service answers with, each knowing its HTTP status and wire code.

Pure: no I/O. `server` turns them into the exact bytes AWS sends (status, x-amzn-ErrorType, JSON).
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """An error response of the emulated service. Subclasses fix the status and code."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalServerException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"message": self.message}

    def headers(self) -> dict[str, str]:
        return {}


class ValidationError(ServiceError):
    status = 400
    code = "ValidationException"


class SerializationError(ServiceError):
    status = 400
    code = "SerializationException"


class AccessDeniedError(ServiceError):
    status = 403
    code = "AccessDeniedException"


class MissingAuthenticationTokenError(ServiceError):
    status = 403
    code = "MissingAuthenticationTokenException"


class InvalidSignatureError(ServiceError):
    status = 403
    code = "InvalidSignatureException"


class UnrecognizedClientError(ServiceError):
    status = 403
    code = "UnrecognizedClientException"


class UnknownOperationError(ServiceError):
    status = 404
    code = "UnknownOperationException"


class ResourceNotFoundError(ServiceError):
    status = 404
    code = "ResourceNotFoundException"

    def __init__(self, resource_type: str, resource_id: str) -> None:
        super().__init__(f"{resource_type} {resource_id} does not exist.")
        self.resource_type = resource_type
        self.resource_id = resource_id

    def body(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "resourceId": self.resource_id,
            "resourceType": self.resource_type,
        }


class ConflictError(ServiceError):
    status = 409
    code = "ConflictException"


class ServiceQuotaExceededError(ServiceError):
    status = 402
    code = "ServiceQuotaExceededException"


class ThrottlingError(ServiceError):
    status = 429
    code = "ThrottlingException"

    def __init__(self, message: str = "Rate exceeded") -> None:
        super().__init__(message)


class InternalServerError(ServiceError):
    status = 500
    code = "InternalServerException"

    def __init__(self, message: str = "Internal server error", retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


def error_of(code: str, status: int, message: str) -> ServiceError:
    """An error with any AWS code and status, for faults on demand: another service's throttle
    (`ThrottledException`, 400) or timeout (`RequestTimeout`, 400), sent exactly as AWS sends its
    own (status, x-amzn-ErrorType, JSON `message`)."""
    kind = type(code, (ServiceError,), {"status": status, "code": code})
    error: ServiceError = kind(message)
    return error
