"""Retries for transient provider errors only (throttling, resets, timeouts): bounded, exponential,
with jitter. Anything else fails the step at once with the provider's message."""

from __future__ import annotations

from typing import Callable, TypeVar

from tenacity import (Retrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential_jitter)

from migrate.errors import TransientProviderError

T = TypeVar("T")


def call_with_retries(fn: Callable[[], T], *, attempts: int = 5, initial: float = 0.5,
                      maximum: float = 10.0, on_retry: Callable[[str], None] | None = None) -> T:
    """Call `fn`, retrying TransientProviderError up to `attempts` times; the last error propagates."""

    def before_sleep(state) -> None:
        if on_retry is not None:
            exc = state.outcome.exception()
            on_retry(f"transient error (attempt {state.attempt_number}/{attempts}): {exc}")

    retrying = Retrying(retry=retry_if_exception_type(TransientProviderError),
                        stop=stop_after_attempt(attempts),
                        wait=wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
                        before_sleep=before_sleep, reraise=True)
    return retrying(fn)
