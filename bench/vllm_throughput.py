"""The vLLM adapter's sampling throughput against plain vLLM doing the same sampling work, on one
engine (run in .venv-vllm: `make bench-vllm`; on a CPU, vLLM's CPU build).

Work: the checkpoint prefixes of SmolLM2's chat rollouts on the first questions of config/smollm2.yaml's
first dataset (stride 16; docs/backends.md's numbers were measured on the hand-written gsm8k-mini,
that config's dataset before issue 31), K samples each, every sample's budget the response's
remaining tokens. Plain vLLM: one `LLM.generate` call, one request per prefix with `n = K` (vLLM's
own parallel sampling), no stop strings. The adapter: `rollouts.continue_prefixes` (one `n = 1`
request per sample, seeded by its stream key), without answer stopping (the same work) and with it
(rounds of stop strings: each sample ends at its settled answer, so it samples fewer tokens in more
engine calls). Each is run `--repeats` times,
alternating, and the best time kept; tokens/s counts the sampled tokens (EOS included).

    .venv-vllm/bin/python bench/vllm_throughput.py [--questions 4] [--K 8] [--repeats 2] [--out bench/results-vllm.json]

Benchmarks measure; they assert nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="bench/results-vllm.json")
    args = ap.parse_args()
    from dataclasses import asdict, replace

    from vllm_support import ENGINE, smollm2_engine, smollm2_rollouts

    from siaflow.generation.backends import Decoding
    from siaflow.generation.rollouts import continuation_prefixes

    t0 = time.perf_counter()
    engine = smollm2_engine()
    started = time.perf_counter() - t0
    decoding = Decoding(0.7, 0.95, 112)
    roll, rules = smollm2_rollouts(engine, decoding, n_q=args.questions, n=2)
    prefixes = list(continuation_prefixes(roll, stride=args.stride, seed=0, variant="original"))
    # the prompt's stop strings are not used: plain vLLM's work has none
    rules = replace(rules, answer_start=None, stop=())
    unstopped = replace(rules, answer_final=None)

    cases = {
        "plain vLLM (n = K per prefix)": lambda: _plain(engine, prefixes, args.K, decoding),
        "adapter, no answer stopping": lambda: _adapter(engine, prefixes, args.K, decoding, unstopped),
        "adapter, answer stopping (rounds)": lambda: _adapter(engine, prefixes, args.K, decoding, rules),
    }
    best = _best_of(cases, args.repeats)
    _report(best, started, len(prefixes), args.K)
    result = {
        "prefixes": len(prefixes),
        "K": args.K,
        "engine_start_s": round(started, 1),
        "cases": best,
        "settings": engine.info.settings,
        "engine_settings": asdict(ENGINE),
    }
    Path(ROOT / args.out).write_text(json.dumps(result, indent=2) + "\n")
    engine.close()


def _plain(engine, prefixes: list, K: int, decoding) -> tuple[int, int]:
    """Plain vLLM on the adapter's engine: one request of n = K samples per prefix, no stopping."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompts = [TokensPrompt(prompt_token_ids=list(p) + list(x)) for _, _, _, x, p in prefixes]
    params = [
        SamplingParams(
            n=K,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            seed=i,
            max_tokens=max(1, decoding.max_new_tokens - len(x)),
            detokenize=False,
        )
        for i, (_, _, _, x, _) in enumerate(prefixes)
    ]
    outs = engine.llm.generate(prompts, params, use_tqdm=False)
    return sum(len(c.token_ids) for o in outs for c in o.outputs), 1


def _adapter(engine, prefixes: list, K: int, decoding, rules) -> tuple[int, int]:
    """siaflow's continuations on the same engine and prefixes (``rules``: with or without answer
    stopping): sampled and prefilled tokens."""
    from siaflow.generation.rollouts import continue_prefixes
    from siaflow.generation.settings import DrawSettings

    before = dict(engine.stats)
    _, ledger = continue_prefixes(engine, prefixes, draw=DrawSettings(decoding, 0, K), rules=rules)
    return ledger["generated_tokens"], engine.stats["prefill_tokens"] - before["prefill_tokens"]


def _best_of(cases: dict, repeats: int) -> dict:
    """Each case run ``repeats`` times, alternating; the fastest run of each kept."""
    best = {name: None for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t = time.perf_counter()
            tokens, prefill = fn()
            dt = time.perf_counter() - t
            if best[name] is None or dt < best[name]["seconds"]:
                best[name] = {
                    "seconds": round(dt, 3),
                    "sampled_tokens": tokens,
                    "tokens_per_s": round(tokens / dt, 1),
                    "adapter_prefill_tokens": prefill,
                }
    return best


def _report(best: dict, started: float, n_prefixes: int, K: int) -> None:
    base = best["plain vLLM (n = K per prefix)"]["tokens_per_s"]
    print(f"engine start {started:.0f} s; {n_prefixes} prefixes x K = {K}")
    for name, r in best.items():
        print(
            f"{name:40s} {r['sampled_tokens']:7d} tokens in {r['seconds']:7.2f} s = {r['tokens_per_s']:7.1f} tok/s "
            f"({r['tokens_per_s'] / base:.2f} of plain vLLM)"
        )


if __name__ == "__main__":
    main()
