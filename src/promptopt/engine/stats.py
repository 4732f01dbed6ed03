"""The statistics behind every verdict: exact tests, intervals, the gate's calibration, ratings.

Pure functions of counts, no dependencies; each says what it assumes. docs/judging.md explains
how the acceptance rules use them and what error rates they give.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache

Z95 = 1.959963984540054


@lru_cache(maxsize=4096)
def binomial_tail(k: int, n: int) -> float:
    """P(X ≥ k) for X ~ Binomial(n, ½): the one-sided sign-test p-value of k successes in n."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def sign_test(wins: int, losses: int) -> float:
    """One-sided p-value that `wins` beat `losses` more often than chance (ties dropped)."""
    return binomial_tail(wins, wins + losses)


def two_sided_sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (equivalently, exact McNemar on the discordant pairs)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return min(1.0, 2 * binomial_tail(max(wins, losses), n))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)
    return max(0.0, low), min(1.0, high)


def mcnemar(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (A right only, B right only)."""
    return two_sided_sign_test(only_b, only_a)


# --- sequential sign test over paired votes ----------------------------------------------------


def reachable(wins: int, losses: int, left: int, alpha: float, spare: int = 0) -> bool:
    """Whether `wins` could still clear p ≤ alpha if all but `spare` of `left` more pairs were wins."""
    more = left - spare
    return more >= 0 and sign_test(wins + more, losses) <= alpha


def looks_every_pair(first: int, most: int) -> tuple[int, ...]:
    """A test that looks after `first` pairs, then after each further pair up to `most`."""
    return tuple(range(first, most + 1))


def stopping(
    level: float, looks: Sequence[int], decisive: float = 0.5, spare: int = 0
) -> list[tuple[int, float, float]]:
    """How a sequential sign test ends when the judge is blind: per look n, (n, P(accept at n),
    P(stop without accepting at n)). Each pair is a win with probability decisive/2, a loss with
    decisive/2, a tie otherwise. At each look (a pair count) the test accepts when the one-sided
    p-value is ≤ `level`, and stops for good when that is out of reach by the last look with
    `spare` pairs to spare.
    """
    win = loss = decisive / 2
    tie = 1 - decisive
    last = looks[-1]
    at = set(looks)
    states = {(0, 0): 1.0}
    ends = []
    for n in range(1, last + 1):
        step: dict[tuple[int, int], float] = {}
        for (w, lo), p in states.items():
            for dw, dl, q in ((1, 0, win), (0, 1, loss), (0, 0, tie)):
                if q:
                    key = (w + dw, lo + dl)
                    step[key] = step.get(key, 0.0) + p * q
        if n not in at:
            states = step
            continue
        states, accepted, stopped = {}, 0.0, 0.0
        for (w, lo), p in step.items():
            if w and sign_test(w, lo) <= level:
                accepted += p
            elif n < last and reachable(w, lo, last - n, level, spare):
                states[(w, lo)] = p
            else:
                stopped += p
        ends.append((n, accepted, stopped))
    return ends


def false_accept_rate(level: float, looks: Sequence[int], decisive: float = 0.5, spare: int = 0) -> float:
    """P(a sequential sign test accepts) when the judge is blind (see `stopping`)."""
    return sum(accepted for _, accepted, _ in stopping(level, looks, decisive, spare))


def expected_pairs(level: float, looks: Sequence[int], decisive: float = 0.5, spare: int = 0) -> float:
    """The mean number of pairs a sequential sign test asks for before it stops, for a blind judge
    (the costliest kind: a judge that sees a difference decides at the first look)."""
    if len(looks) == 1:
        return float(looks[0])
    return sum(n * (accepted + stopped) for n, accepted, stopped in stopping(level, looks, decisive, spare))


def worst_false_accept(level: float, looks: Sequence[int], spare: int = 0) -> float:
    """`false_accept_rate` at its worst over how often a blind judge's two orders agree."""
    return max(false_accept_rate(level, looks, d / 20, spare) for d in range(1, 21))


@lru_cache(maxsize=64)
def calibrated_level(alpha: float, looks: tuple[int, ...]) -> float:
    """The per-look p-value bar that keeps a sequential sign test's false-accept rate ≤ alpha under
    any blind judge (exact over a grid of tie rates): the largest attainable bar that does.

    With one look this is the largest attainable p-value ≤ alpha; more looks need a lower bar.
    """
    if len(looks) == 1:  # one look: an exact test at alpha, whatever the number of decisive pairs
        return alpha
    last = looks[-1]
    levels = sorted({sign_test(w, n - w) for n in range(1, last + 1) for w in range(1, n + 1)})
    levels = [lv for lv in levels if lv <= alpha]
    lo, hi, best = 0, len(levels) - 1, 0.0
    while lo <= hi:  # the false-accept rate grows with the bar: bisect
        mid = (lo + hi) // 2
        if worst_false_accept(levels[mid], looks) <= alpha:
            best, lo = levels[mid], mid + 1
        else:
            hi = mid - 1
    return best


# --- ratings ------------------------------------------------------------------------------------


def bradley_terry(
    items: Sequence[str], outcomes: Iterable[tuple[str, str, float]], anchor: str, prior: float = 1.0, steps: int = 200
) -> dict[str, float]:
    """One rating per item (logit scale, `anchor` at 0) from pairwise outcomes (winner share 0..1).

    `outcomes` are (a, b, s): a scored s against b (1 a win, 0 a loss, ½ a tie). A Gaussian
    prior of variance `prior` keeps ratings finite when an item never lost; fitted by Newton
    steps per item (coordinate ascent), which converge for this concave objective.
    """
    ratings = dict.fromkeys(items, 0.0)
    games: dict[str, list[tuple[str, float]]] = {i: [] for i in items}
    for a, b, s in outcomes:
        if a in games and b in games and a != b:
            games[a].append((b, s))
            games[b].append((a, 1.0 - s))
    for _ in range(steps):
        moved = 0.0
        for item in items:
            if item == anchor or not games[item]:
                continue
            r = ratings[item]
            grad, hess = -r / prior, -1.0 / prior
            for other, s in games[item]:
                p = 1.0 / (1.0 + math.exp(ratings[other] - r))
                grad += s - p
                hess -= p * (1 - p)
            step = -grad / hess
            ratings[item] = r + step
            moved = max(moved, abs(step))
        if moved < 1e-9:
            break
    shift = ratings.get(anchor, 0.0)
    return {k: v - shift for k, v in ratings.items()}
