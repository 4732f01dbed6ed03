"""Run a prompt on questions with the executor model."""

from __future__ import annotations

from promptopt.engine.concurrency import gather_ordered
from promptopt.errors import LLMError
from promptopt.llm import LLM
from promptopt.records import AnswerRecord


def executor_messages(prompt: str, question: str) -> list[dict[str, str]]:
    """As SPO does: the prompt, a blank line, the question, in one user message (no prompt: the question)."""
    return [{"role": "user", "content": f"{prompt.rstrip()}\n\n{question}" if prompt.strip() else question}]


async def answer_one(llm: LLM, prompt: str, question: str) -> AnswerRecord:
    try:
        reply = await llm.complete("executor", executor_messages(prompt, question))
    except LLMError as exc:
        if not exc.retryable:
            raise  # auth, unknown model, bad request: the whole run is wrong, stop now
        return AnswerRecord(question=question, answer="", error=str(exc))
    return AnswerRecord(question=question, answer=reply.text.strip())


async def execute(llm: LLM, prompt: str, questions: list[str]) -> list[AnswerRecord]:
    """One answer per question, in order; a call that failed after retries is a failed answer."""
    return await gather_ordered(answer_one(llm, prompt, q) for q in questions)
