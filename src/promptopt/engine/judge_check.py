"""`promptopt doctor --judge`: how far a judge can be trusted on a template's answers, without optimizing.

Two probes, both judged one question at a time in pairs (both orders):
- the template's prompt against the bare questions (no prompt at all): a judge that sees a
  difference picks the same answer in both orders (order consistency near 1);
- the template's answers against themselves: there is nothing to choose, so any preference is
  position bias (a fair judge picks A about half the time).
"""

from __future__ import annotations

from dataclasses import dataclass

from promptopt.engine import judge as judging
from promptopt.engine.acceptance import Tally
from promptopt.engine.concurrency import gather_ordered
from promptopt.engine.diagnostics import NEAR_CHANCE, JudgeStats, judge_stats
from promptopt.engine.execute import execute
from promptopt.engine.strategies.base import require_answers
from promptopt.llm import LLM
from promptopt.records import VoteRecord
from promptopt.template import Template

PAIRS_PER_QUESTION = 2
# The bare probe: the executor gets only the question, as if there were no prompt.
BARE = ""


@dataclass
class JudgeReport:
    questions: int
    contrast: JudgeStats  # prompt vs bare questions
    prompt_pairs: Tally  # of the contrast: for the prompt (wins), for the bare answers (losses), tied
    same: JudgeStats  # identical answers on both sides
    votes: list[VoteRecord]

    @property
    def verdict(self) -> str:
        c, bias = self.contrast.consistency, self.same.share_a
        if c is None:
            return "no usable vote: check the evaluator model (doctor without --judge)"
        if c <= NEAR_CHANCE:
            return "close to a coin flip: its verdicts say little; use a stronger --eval-model or a metric"
        if bias is not None and abs(bias - 0.5) >= 0.3:
            return "strongly position-biased: paired judging cancels it, at the cost of more ties"
        return "consistent: its two orders agree; its verdicts carry evidence"

    def as_dict(self) -> dict[str, object]:
        return {
            "questions": self.questions,
            "verdict": self.verdict,
            "contrast": self.contrast.as_dict(),
            "prompt_pairs": {
                "prompt": self.prompt_pairs.wins,
                "bare": self.prompt_pairs.losses,
                "tie": self.prompt_pairs.ties,
            },
            "same_answers": self.same.as_dict(),
        }


async def check_judge(llm: LLM, template: Template) -> JudgeReport:
    questions = [q.question for q in template.qa]
    prompt_answers, bare_answers = await gather_ordered(
        [execute(llm, template.prompt, questions), execute(llm, BARE, questions)]
    )
    require_answers(prompt_answers, "the template's prompt")
    contrast = judging.Comparison(template.requirements, questions, template.golden, bare_answers, prompt_answers)
    same = judging.Comparison(template.requirements, questions, template.golden, prompt_answers, prompt_answers)
    n = len(questions)
    batches = await gather_ordered(
        [
            *(judging.votes(llm, judging.one_question(contrast, i), range(2 * PAIRS_PER_QUESTION)) for i in range(n)),
            *(judging.votes(llm, judging.one_question(same, i), range(2)) for i in range(n)),
        ]
    )
    contrast_votes = [v for batch in batches[:n] for v in batch]
    same_votes = [v for batch in batches[n:] for v in batch]
    return JudgeReport(
        n, judge_stats(contrast_votes), Tally.of(contrast_votes), judge_stats(same_votes), contrast_votes + same_votes
    )
