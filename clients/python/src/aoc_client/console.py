"""The synchronous client: `Console(url, key)`."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, overload

import httpx

from aoc_client import _core
from aoc_client.errors import ApiError, ApprovalTimeoutError, ConnectionFailedError
from aoc_client.models import Approval, ReservationState, Usage, Verdict

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class Console:
    """A client of one console with one API key (its scopes limit what it may call). `url` and
    `key` default to the AOC_URL and AOC_API_KEY environment variables. Holds a connection pool:
    `close()` it, or use it as a context manager."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = _core.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self._key = _core.settings(url, key)
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1/", headers=_core.headers(self._key), timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"Console({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, **kwargs: Any) -> Any:
        """One call to `/api/v1/<path>`: its JSON, or the ApiError subclass of its refusal."""
        try:
            response = self._http.request(method, path, json=json, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"{method} {self.url}/api/v1/{path}: {exc!r}") from exc
        return _core.read(response)

    # --- Approvals -----------------------------------------------------------------------------

    def create_approval(
        self,
        action: str,
        arguments: Mapping[str, Any],
        *,
        risk: str = "write",
        reason: str = "policy",
        context: Mapping[str, Any] | None = None,
        expires_in: int | None = None,
        run: str | None = None,
    ) -> Approval:
        """Ask for a human decision on `action` with `arguments` (needs `approvals:write`)."""
        body = _core.approval_body(
            action=action,
            arguments=arguments,
            risk=risk,
            reason=reason,
            context=context,
            expires_in=expires_in,
            run=run,
        )
        return Approval.from_json(self.request("POST", "approvals", json=body))

    def get_approval(self, approval_id: str, *, wait: float = 0) -> Approval:
        """The request's state; with `wait` (at most 60 s) the console holds the answer until it is
        decided or `wait` seconds pass."""
        wait = min(max(wait, 0), _core.MAX_WAIT_SECONDS)
        return Approval.from_json(
            self.request(
                "GET", f"approvals/{approval_id}", params={"wait": f"{wait:g}"}, timeout=_core.wait_timeout(wait)
            )
        )

    def wait_for_decision(self, approval_id: str, *, timeout: float | None = None) -> Approval:
        """Long-poll until the request leaves `pending` (decided, expired or cancelled) and return
        it in that state. Rate limits and a console briefly unavailable are waited out; after
        `timeout` seconds still pending, ApprovalTimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            left = _core.MAX_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                approval = self.get_approval(approval_id)
                if not approval.is_pending:
                    return approval
                raise ApprovalTimeoutError(f"{approval.action}: still pending after {timeout:g} s.", approval)
            try:
                approval = self.get_approval(approval_id, wait=min(left, _core.MAX_WAIT_SECONDS))
            except ApiError as exc:
                delay = _core.retry_delay(exc)
                if delay is None:
                    raise
                time.sleep(min(delay, left))
                continue
            except ConnectionFailedError:
                failures += 1
                if failures > _core.WAIT_RETRIES:
                    raise
                time.sleep(min(2.0**failures, left, 10.0))
                continue
            failures = 0
            if not approval.is_pending:
                return approval

    def request_approval(
        self,
        action: str,
        arguments: Mapping[str, Any],
        *,
        risk: str = "write",
        reason: str = "policy",
        context: Mapping[str, Any] | None = None,
        expires_in: int | None = None,
        run: str | None = None,
        wait_timeout: float | None = None,
    ) -> Approval:
        """Create the request and wait for its decision. Returns it approved (its `arguments` are
        the approved ones, edited or not); raises ApprovalRejectedError (with the reviewer's
        `comment`), ApprovalExpiredError, ApprovalCancelledError or ApprovalTimeoutError."""
        created = self.create_approval(
            action, arguments, risk=risk, reason=reason, context=context, expires_in=expires_in, run=run
        )
        return _core.outcome(self.wait_for_decision(created.id, timeout=wait_timeout))

    @overload
    def require_approval[**P, R](self, action: Callable[P, R], /) -> Callable[P, R]: ...

    @overload
    def require_approval(
        self,
        action: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        *,
        risk: str = "write",
        reason: str = "policy",
        context: Mapping[str, Any] | None = None,
        expires_in: int | None = None,
        run: str | None = None,
        wait_timeout: float | None = None,
        exclude: Collection[str] = ("self", "cls"),
    ) -> ApprovalGate: ...

    def require_approval(
        self,
        action: str | Callable[..., Any] | None = None,
        arguments: Mapping[str, Any] | None = None,
        *,
        risk: str = "write",
        reason: str = "policy",
        context: Mapping[str, Any] | None = None,
        expires_in: int | None = None,
        run: str | None = None,
        wait_timeout: float | None = None,
        exclude: Collection[str] = ("self", "cls"),
    ) -> Any:
        """A human's approval before an action, as a decorator or a context manager.

        As a decorator (`@console.require_approval` or `@console.require_approval(risk=...)`),
        each call asks for approval of the function's arguments (by name, defaults filled in;
        the action is the function's name unless given), waits, and calls the function with the
        approved arguments, which a reviewer may have edited. As a context manager
        (`with console.require_approval("refund", {"order": "A-1"}) as approval:`) the body runs
        once approved, with `approval.arguments`. A rejection raises ApprovalRejectedError
        carrying the reviewer's `comment`; expiry ApprovalExpiredError."""
        if callable(action):
            return ApprovalGate(self, None, None, {"risk": risk, "reason": reason}, None, exclude)(action)
        options = {
            "risk": risk,
            "reason": reason,
            "context": context,
            "expires_in": expires_in,
            "run": run,
        }
        return ApprovalGate(self, action, arguments, options, wait_timeout, exclude)

    # --- Budgets -------------------------------------------------------------------------------

    def reserve(
        self,
        model: str,
        *,
        max_output_tokens: int,
        input_tokens: int | None = None,
        input_text: str | None = None,
        end_user_id: str | None = None,
        session_id: str | None = None,
        agent: str | None = None,
    ) -> Reservation:
        """A context manager that reserves a model call's worst case on every budget that applies
        (needs `budgets:reserve`; a full budget raises BudgetExceededError naming it), and at the
        end settles with the usage the body reported (`r.settle(...)` at once, or `r.set_usage(...)`
        for the end), or releases it if the body raised. A body that reports no usage is settled at
        the worst case reserved, flagged as an estimate."""
        body = _core.reservation_body(
            model=model,
            max_output_tokens=max_output_tokens,
            input_tokens=input_tokens,
            input_text=input_text,
            end_user_id=end_user_id,
            session_id=session_id,
            agent=agent,
        )
        return Reservation(self, body)

    # --- Guardrails and traces -----------------------------------------------------------------

    def check(
        self,
        stage: str,
        text: str | None = None,
        *,
        tool: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        result: Any = None,
        agent: str | None = None,
    ) -> Verdict:
        """Run content through the guardrails of `agent` (or the tenant's): `text` for the input
        and output stages, `tool` and `arguments` for tool_call, `text` or `result` for
        tool_result (needs `guardrails:check`)."""
        body = _core.check_body(stage=stage, text=text, tool=tool, arguments=arguments, result=result, agent=agent)
        return Verdict.from_json(self.request("POST", "guardrails/check", json=body))

    def trace(self, trace_id: str) -> dict[str, Any]:
        """One trace with its spans (needs `read`)."""
        found: dict[str, Any] = self.request("GET", f"traces/{trace_id}")
        return found

    def instrument(self, *, service_name: str | None = None, set_global: bool = True) -> TracerProvider:
        """Send OpenTelemetry spans to this console (see aoc_client.otel.instrument)."""
        from aoc_client.otel import instrument

        return instrument(self.url, self._key, service_name=service_name, set_global=set_global)


class ApprovalGate:
    """What `Console.require_approval(...)` returns: a decorator, and a context manager."""

    def __init__(
        self,
        console: Console,
        action: str | None,
        arguments: Mapping[str, Any] | None,
        options: dict[str, Any],
        wait_timeout: float | None,
        exclude: Collection[str],
    ) -> None:
        self._console = console
        self._action = action
        self._arguments = arguments
        self._options = options
        self._wait_timeout = wait_timeout
        self._exclude = exclude

    def __call__[**P, R](self, fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"{fn.__qualname__} is async: decorate it with AsyncConsole.require_approval.")
        binding = _core.Binding(fn, self._exclude)
        action = self._action or fn.__name__

        @functools.wraps(fn)
        def gated(*args: P.args, **kwargs: P.kwargs) -> R:
            bound, asked = binding.arguments(args, kwargs)
            approval = self._console.request_approval(action, asked, wait_timeout=self._wait_timeout, **self._options)
            call_args, call_kwargs = binding.call_args(bound, approval.arguments)
            return fn(*call_args, **call_kwargs)

        return gated

    def __enter__(self) -> Approval:
        if self._action is None:
            raise TypeError("require_approval as a context manager names the action: require_approval(action, args).")
        return self._console.request_approval(
            self._action, self._arguments or {}, wait_timeout=self._wait_timeout, **self._options
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class Reservation:
    """A budget reservation held for the `with` block (see Console.reserve). `state` is the
    console's last answer about it (None before the block starts)."""

    def __init__(self, console: Console, body: dict[str, Any]) -> None:
        self._console = console
        self._body = body
        self._usage: Usage | None = None
        self.state: ReservationState | None = None

    @property
    def id(self) -> str:
        return self._open().id

    @property
    def is_open(self) -> bool:
        return self.state is not None and self.state.status == "open"

    def _open(self) -> ReservationState:
        if self.state is None:
            raise RuntimeError("The reservation is made when its `with` block starts.")
        return self.state

    def __enter__(self) -> Self:
        self.state = ReservationState.from_json(self._console.request("POST", "reservations", json=self._body))
        return self

    def set_usage(self, input_tokens: int, output_tokens: int, *, cached_input_tokens: int = 0) -> None:
        """The usage to settle with when the block ends (a later call replaces it)."""
        self._usage = Usage(input_tokens, output_tokens, cached_input_tokens)

    def settle(
        self, input_tokens: int, output_tokens: int, *, cached_input_tokens: int = 0, estimated: bool = False
    ) -> ReservationState:
        """Settle now with the provider's usage (a second settle or release: ConflictError)."""
        usage = Usage(input_tokens, output_tokens, cached_input_tokens, estimated)
        return self._finish("settle", usage.as_json())

    def release(self) -> ReservationState:
        """Nothing was spent: give the reservation back."""
        return self._finish("release", None)

    def _finish(self, verb: str, body: dict[str, Any] | None) -> ReservationState:
        state = self._open()
        self.state = ReservationState.from_json(
            self._console.request("POST", f"reservations/{state.id}/{verb}", json=body)
        )
        return self.state

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.is_open:
            return
        if exc is not None:
            try:
                self.release()
            except (ApiError, ConnectionFailedError) as failure:
                # The body's exception is the one to see; an unreleased hold expires by its TTL.
                exc.add_note(f"aoc_client: releasing reservation {self._open().id} failed: {failure}")
            return
        usage = self._usage or _core.worst_case(self._open().raw)
        self._finish("settle", usage.as_json())
