"""The asynchronous client: `AsyncConsole(url, key)`, the same calls as Console, awaited
(`async with console.reserve(...)`, `async with console.require_approval(...)`, and
`@console.require_approval` on `async def` functions)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, overload

import httpx

from aoc_client import _core
from aoc_client.errors import ApiError, ApprovalTimeoutError, ConnectionFailedError
from aoc_client.models import Approval, ReservationState, Usage, Verdict

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class AsyncConsole:
    """The asynchronous client of one console with one API key (see Console). `aclose()` it, or
    use it as an async context manager."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = _core.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, self._key = _core.settings(url, key)
        self._http = httpx.AsyncClient(
            base_url=f"{self.url}/api/v1/", headers=_core.headers(self._key), timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"AsyncConsole({self.url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, *, json: Any = None, **kwargs: Any) -> Any:
        """One call to `/api/v1/<path>`: its JSON, or the ApiError subclass of its refusal."""
        try:
            response = await self._http.request(method, path, json=json, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"{method} {self.url}/api/v1/{path}: {exc!r}") from exc
        return _core.read(response)

    # --- Approvals -----------------------------------------------------------------------------

    async def create_approval(
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
        body = _core.approval_body(
            action=action,
            arguments=arguments,
            risk=risk,
            reason=reason,
            context=context,
            expires_in=expires_in,
            run=run,
        )
        return Approval.from_json(await self.request("POST", "approvals", json=body))

    async def get_approval(self, approval_id: str, *, wait: float = 0) -> Approval:
        wait = min(max(wait, 0), _core.MAX_WAIT_SECONDS)
        return Approval.from_json(
            await self.request(
                "GET", f"approvals/{approval_id}", params={"wait": f"{wait:g}"}, timeout=_core.wait_timeout(wait)
            )
        )

    async def wait_for_decision(self, approval_id: str, *, timeout: float | None = None) -> Approval:
        """See Console.wait_for_decision."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            left = _core.MAX_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                approval = await self.get_approval(approval_id)
                if not approval.is_pending:
                    return approval
                raise ApprovalTimeoutError(f"{approval.action}: still pending after {timeout:g} s.", approval)
            try:
                approval = await self.get_approval(approval_id, wait=min(left, _core.MAX_WAIT_SECONDS))
            except ApiError as exc:
                delay = _core.retry_delay(exc)
                if delay is None:
                    raise
                await asyncio.sleep(min(delay, left))
                continue
            except ConnectionFailedError:
                failures += 1
                if failures > _core.WAIT_RETRIES:
                    raise
                await asyncio.sleep(min(2.0**failures, left, 10.0))
                continue
            failures = 0
            if not approval.is_pending:
                return approval

    async def request_approval(
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
        """See Console.request_approval."""
        created = await self.create_approval(
            action, arguments, risk=risk, reason=reason, context=context, expires_in=expires_in, run=run
        )
        return _core.outcome(await self.wait_for_decision(created.id, timeout=wait_timeout))

    @overload
    def require_approval[**P, R](self, action: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...

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
    ) -> AsyncApprovalGate: ...

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
        """See Console.require_approval: a decorator of `async def` functions, and an async
        context manager."""
        if callable(action):
            return AsyncApprovalGate(self, None, None, {"risk": risk, "reason": reason}, None, exclude)(action)
        options = {"risk": risk, "reason": reason, "context": context, "expires_in": expires_in, "run": run}
        return AsyncApprovalGate(self, action, arguments, options, wait_timeout, exclude)

    # --- Budgets, guardrails, traces -----------------------------------------------------------

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
    ) -> AsyncReservation:
        """See Console.reserve: `async with console.reserve(...) as r:`."""
        body = _core.reservation_body(
            model=model,
            max_output_tokens=max_output_tokens,
            input_tokens=input_tokens,
            input_text=input_text,
            end_user_id=end_user_id,
            session_id=session_id,
            agent=agent,
        )
        return AsyncReservation(self, body)

    async def check(
        self,
        stage: str,
        text: str | None = None,
        *,
        tool: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        result: Any = None,
        agent: str | None = None,
    ) -> Verdict:
        """See Console.check."""
        body = _core.check_body(stage=stage, text=text, tool=tool, arguments=arguments, result=result, agent=agent)
        return Verdict.from_json(await self.request("POST", "guardrails/check", json=body))

    async def trace(self, trace_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.request("GET", f"traces/{trace_id}")
        return found

    def instrument(self, *, service_name: str | None = None, set_global: bool = True) -> TracerProvider:
        """See aoc_client.otel.instrument (the exporter runs in its own thread either way)."""
        from aoc_client.otel import instrument

        return instrument(self.url, self._key, service_name=service_name, set_global=set_global)


class AsyncApprovalGate:
    """What `AsyncConsole.require_approval(...)` returns: a decorator of `async def` functions,
    and an async context manager."""

    def __init__(
        self,
        console: AsyncConsole,
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

    def __call__[**P, R](self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"{fn.__qualname__} is not async: decorate it with Console.require_approval.")
        binding = _core.Binding(fn, self._exclude)
        action = self._action or fn.__name__

        @functools.wraps(fn)
        async def gated(*args: P.args, **kwargs: P.kwargs) -> R:
            bound, asked = binding.arguments(args, kwargs)
            approval = await self._console.request_approval(
                action, asked, wait_timeout=self._wait_timeout, **self._options
            )
            call_args, call_kwargs = binding.call_args(bound, approval.arguments)
            return await fn(*call_args, **call_kwargs)

        return gated

    async def __aenter__(self) -> Approval:
        if self._action is None:
            raise TypeError("require_approval as a context manager names the action: require_approval(action, args).")
        return await self._console.request_approval(
            self._action, self._arguments or {}, wait_timeout=self._wait_timeout, **self._options
        )

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class AsyncReservation:
    """A budget reservation held for the `async with` block (see Console.reserve)."""

    def __init__(self, console: AsyncConsole, body: dict[str, Any]) -> None:
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
            raise RuntimeError("The reservation is made when its `async with` block starts.")
        return self.state

    async def __aenter__(self) -> Self:
        self.state = ReservationState.from_json(await self._console.request("POST", "reservations", json=self._body))
        return self

    def set_usage(self, input_tokens: int, output_tokens: int, *, cached_input_tokens: int = 0) -> None:
        self._usage = Usage(input_tokens, output_tokens, cached_input_tokens)

    async def settle(
        self, input_tokens: int, output_tokens: int, *, cached_input_tokens: int = 0, estimated: bool = False
    ) -> ReservationState:
        usage = Usage(input_tokens, output_tokens, cached_input_tokens, estimated)
        return await self._finish("settle", usage.as_json())

    async def release(self) -> ReservationState:
        return await self._finish("release", None)

    async def _finish(self, verb: str, body: dict[str, Any] | None) -> ReservationState:
        state = self._open()
        answer = await self._console.request("POST", f"reservations/{state.id}/{verb}", json=body)
        self.state = ReservationState.from_json(answer)
        return self.state

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.is_open:
            return
        if exc is not None:
            try:
                await self.release()
            except (ApiError, ConnectionFailedError) as failure:
                exc.add_note(f"aoc_client: releasing reservation {self._open().id} failed: {failure}")
            return
        usage = self._usage or _core.worst_case(self._open().raw)
        await self._finish("settle", usage.as_json())
