"""One exception hierarchy; the CLI renders each as one line and an exit code."""

from __future__ import annotations


class ExitCode:
    """Process exit codes (documented in docs/reliability.md)."""

    OK = 0
    FAILURE = 1  # a model or provider fault that stopped the run, or no model call succeeded
    USAGE = 2  # bad flags, template, config or workspace input (an unknown model included)
    BUDGET = 3  # --budget-usd / --max-calls / --deadline reached; state saved
    WORSE = 4  # not better: compare --fail-if-worse / --fail-unless-better, optimize --fail-unless-improved
    LOCKED = 5  # another optimize holds the workspace lock
    SIGINT = 130
    SIGTERM = 143


class PromptoptError(Exception):
    """Base of every error we expect; its message is written for users."""

    exit_code = ExitCode.FAILURE


class TemplateError(PromptoptError):
    exit_code = ExitCode.USAGE


class ConfigError(PromptoptError):
    exit_code = ExitCode.USAGE


class WorkspaceError(PromptoptError):
    exit_code = ExitCode.USAGE


class WorkspaceLocked(WorkspaceError):
    exit_code = ExitCode.LOCKED


class BudgetExceeded(PromptoptError):
    exit_code = ExitCode.BUDGET


class DeadlineExceeded(BudgetExceeded):
    """--deadline passed: no new call starts; calls in flight end by the deadline."""


class Interrupted(PromptoptError):
    """The run was stopped by SIGINT/SIGTERM after saving what was complete."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class LLMError(PromptoptError):
    """A model call failed for good (after retries where retrying made sense).

    `retryable` errors are one failed call (recorded as data, the run goes on); the others are
    system-wide faults that stop the run. `transport_retry` says whether the client itself
    tries the same request again before giving up.
    """

    retryable = False
    transport_retry = False


class LLMAuthError(LLMError):
    pass


class LLMBadRequest(LLMError):
    pass


class LLMNotFound(LLMError):
    """An unknown model: fix the flag (exit 2, like any other bad input)."""

    exit_code = ExitCode.USAGE


class LLMContextWindow(LLMError):
    pass


class LLMRateLimited(LLMError):
    retryable = True
    transport_retry = True


class LLMTransient(LLMError):
    """Timeouts, connection errors, 5xx, garbled bodies: worth another attempt."""

    retryable = True
    transport_retry = True


class LLMReplyTooLarge(LLMError):
    """A reply longer than the role's --max-reply-chars: a failed call, not retried."""

    retryable = True


class LLMUnreachable(LLMError):
    """Nothing listens at the configured endpoint (found before any paid call)."""


class TooManyErrors(LLMError):
    """--max-errors model calls in a row failed: the provider is down or misconfigured."""
