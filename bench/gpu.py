"""GPU smoke check, for whoever has a CUDA machine (it measures and prints; it asserts nothing):

    python bench/gpu.py [--model PATH ...] [--out results.json]

1. The transformers backend on CUDA: generated tokens per second on the toy models and on every
   local model given with --model.
2. Where vLLM is installed, on the same models: two samples of one prompt (one request per sample
   key) differ; vLLM's processed log-probabilities and top-k entropies against the transformers
   backend's exact ones on vLLM's own tokens at T = 0.5, top-p 0.9; ``num_cached_tokens`` on a
   repeated prompt (the prefix cache).

Without CUDA, or without vLLM for part 2, it says so and skips that part (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Q: Eve has 55, loses 8, gets 7, finds 9. How many?\nA: ", "Q: Bob has 12, gets 30. How many?\nA: "]


def _requests(backend, n: int, tag: str):
    from siaflow.generation.backends import Request
    from siaflow.generation.sampling import stream_key

    return [
        Request(tuple(backend.encode(p)), tuple(stream_key(tag, i, j) for j in range(n))) for i, p in enumerate(PROMPTS)
    ]


def transformers_throughput(model: str) -> dict:
    from siaflow.generation.backends import Decoding, EngineSettings, TransformersSettings, open_backend

    backend = open_backend(EngineSettings("transformers", model, TransformersSettings(device="cuda", batch_rows=512)))
    dec = Decoding(temperature=0.7, top_p=0.95, max_new_tokens=128)
    backend.generate(_requests(backend, 4, "warm-up"), dec)
    t0 = time.perf_counter()
    gens = backend.generate(_requests(backend, 128, "bench"), dec, token_stats=True)
    seconds = time.perf_counter() - t0
    tokens = sum(g.n_sampled for gs in gens for g in gs)
    return {
        "model": model,
        "backend": "transformers",
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds, 1),
    }


def vllm_checks(model: str) -> dict:
    """vLLM against the transformers backend on the same model."""
    import torch

    from siaflow.generation.backends import (
        Decoding,
        EngineSettings,
        Request,
        TransformersSettings,
        VLLMSettings,
        open_backend,
    )
    from siaflow.generation.sampling import nucleus_logprobs, token_entropy

    vl = open_backend(EngineSettings("vllm", model, VLLMSettings(logprobs=20, gpu_memory_utilization=0.5)))
    hf = open_backend(EngineSettings("transformers", model, TransformersSettings(device="cuda")))
    dec = Decoding(temperature=0.5, top_p=0.9, max_new_tokens=64)
    two = vl.generate([Request(tuple(vl.encode(PROMPTS[0])), (1, 2))], dec)[0]
    gens = vl.generate(_requests(vl, 2, "vllm"), dec, token_stats=True)
    lp_diff, h_gap, n = 0.0, 0.0, 0
    for prompt, gs in zip(PROMPTS, gens):
        ids = hf.encode(prompt)
        for g in gs:
            if not g.token_ids:
                continue
            with torch.no_grad():
                logits = hf.model(torch.tensor([ids + g.token_ids], device="cuda")).logits[0, len(ids) - 1 : -1]
            lp = nucleus_logprobs(torch.log_softmax(logits.float() / dec.temperature, -1), dec.top_p)
            exact = lp.gather(-1, torch.tensor(g.token_ids, device="cuda")[:, None]).squeeze(-1).cpu()
            lp_diff = max(lp_diff, float((exact - torch.tensor(g.logprobs)).abs().max()))
            h_gap += float((token_entropy(lp).cpu() - torch.tensor(g.entropies)).sum())
            n += len(g.token_ids)
    before = vl.stats["prefill_tokens"]
    repeat = [Request(tuple(vl.encode(PROMPTS[1])), (7,))]
    vl.generate(repeat, dec)
    first = vl.stats["prefill_tokens"] - before
    vl.generate(repeat, dec)
    second = vl.stats["prefill_tokens"] - before - first
    return {
        "model": model,
        "two_samples_differ": two[0].token_ids != two[1].token_ids,
        "max_abs_logprob_diff_vs_transformers": lp_diff,
        "tokens_compared": n,
        "mean_exact_minus_topk_entropy": h_gap / max(n, 1),
        "prefill_tokens_first_call": first,
        "prefill_tokens_repeated_call": second,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="a local Hugging Face model directory")
    ap.add_argument("--out", default=None, help="write the results here as JSON")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device here: skipped")
        return
    models = [str(p) for p in sorted((ROOT / "resources/toy_models").iterdir()) if p.is_dir()] + args.model
    results = {"device": torch.cuda.get_device_name(0), "transformers": [transformers_throughput(m) for m in models]}
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("bench/gpu.py: vllm is not installed: the vLLM checks are skipped")
    else:
        results["vllm"] = [vllm_checks(m) for m in models]
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
