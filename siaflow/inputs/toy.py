"""The toy reasoning world: multi-step arithmetic word problems and their step-by-step traces,
informative (the problem's own) or not (another problem's steps). Pure Python: the questions of a
toy dataset need no torch. The tiny models trained on these traces: ``siaflow.inputs.toy_models``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------

NAMES = ["Eve", "Bob", "Ann", "Tom", "Sam", "Zoe", "Max", "Ida", "Leo", "Mia", "Kim", "Ned"]
# verb -> sign of the operation
VERBS = {"gets": +1, "finds": +1, "buys": +1, "wins": +1, "loses": -1, "eats": -1, "sells": -1, "drops": -1}

PROMPT_TEMPLATE = "Q: {question}\nA: "
ANSWER_MARKER = "####"


@dataclass(frozen=True)
class Problem:
    question: str
    steps: tuple[tuple[int, int, int], ...]  # (left, signed operand, result)
    answer: int

    def trace(self) -> str:
        """The step-by-step reasoning, without the final answer line."""
        parts = []
        for left, operand, result in self.steps:
            op = "+" if operand >= 0 else "-"
            parts.append(f"{left}{op}{abs(operand)}={result}.")
        return " ".join(parts)


def make_problem(rng: random.Random, n_steps: int = 3, start_range=(10, 60), operand_range=(1, 9)) -> Problem:
    """One word problem, e.g. ``Eve has 55, loses 8, gets 7, finds 9. How many?``.

    Subtractions never take the running total below zero.
    """
    name = rng.choice(NAMES)
    value = rng.randint(*start_range)
    clauses, steps = [], []
    for _ in range(n_steps):
        verb = rng.choice(list(VERBS))
        operand = rng.randint(*operand_range)
        if VERBS[verb] < 0 and operand > value:
            verb = rng.choice([v for v, s in VERBS.items() if s > 0])
        signed = VERBS[verb] * operand
        steps.append((value, signed, value + signed))
        clauses.append(f"{verb} {operand}")
        value += signed
    question = f"{name} has {steps[0][0]}, " + ", ".join(clauses) + ". How many?"
    return Problem(question=question, steps=tuple(steps), answer=value)


def informative_response(problem: Problem) -> str:
    """Correct step-by-step trace followed by the answer line (the 'sft' regime)."""
    return f"{problem.trace()} {ANSWER_MARKER} {problem.answer}"


def noninformative_response(problem: Problem, decoy: Problem) -> str:
    """The trace of a *different* problem followed by this problem's answer (the 'base' regime):
    the reasoning prefix carries no information about the answer."""
    return f"{decoy.trace()} {ANSWER_MARKER} {problem.answer}"


def make_dataset(n_questions: int, seed: int, n_steps: int = 3) -> list[dict]:
    """Evaluation questions in the normalised dataset schema (see ``siaflow.inputs.datasets``)."""
    rng = random.Random(f"toy-eval-{seed}")
    rows = []
    for i in range(n_questions):
        p = make_problem(rng, n_steps=n_steps)
        rows.append(
            {
                "question_id": f"toy-{i:05d}",
                "question": p.question,
                "options": None,
                "gold": str(p.answer),
                "answer_type": "numeric",
            }
        )
    return rows
