"""Kubernetes-shaped failures: every error the simulator answers is a `Status` body like the real one."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer other than success; `body` is the metav1.Status the server sends."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        list_meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}
        self.list_meta = list_meta or {}  # Status.metadata (a ListMeta): a stale continue's new token

    @property
    def body(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.list_meta),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(plural, group)} "{name}" not found',
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": plural},
    )


def conflict(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": group, "kind": plural},
    )


def invalid(kind: str, group: str, name: str, field: str, problem: str) -> ApiError:
    return invalid_all(kind, group, name, [(field, problem)])


def invalid_all(kind: str, group: str, name: str, errors: list[tuple[str, str]]) -> ApiError:
    """NewInvalid: every field error in one Status, listed in brackets when there are several."""
    listed = [f"{field}: {problem}" for field, problem in errors]
    what = listed[0] if len(listed) == 1 else f"[{', '.join(listed)}]"
    subject = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{subject} "{name}" is invalid: {what}',
        {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": _cause_reason(problem), "message": problem, "field": field}
                for field, problem in errors
            ],
        },
    )


_CAUSES = {
    "Required value": "FieldValueRequired",
    "Forbidden": "FieldValueForbidden",
    "Unsupported value": "FieldValueNotSupported",
    "Too long": "FieldValueTooLong",
    "Duplicate value": "FieldValueDuplicate",
}


def _cause_reason(problem: str) -> str:
    """field.ErrorType as a StatusCause reason: the problem text starts with the type's description."""
    return next(
        (reason for prefix, reason in _CAUSES.items() if problem.startswith(prefix)), "FieldValueInvalid"
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(
    user: str, verb: str, plural: str, group: str, name: str, namespace: str | None, sub: str | None = None
) -> ApiError:
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    subject = f'{qualified(plural, group)} "{name}"' if name else qualified(plural, group)
    return ApiError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{plural}{"/" + sub if sub else ""}" in API group '
        f'"{group}"{where}',
        {"name": name, "group": group, "kind": plural},
    )
