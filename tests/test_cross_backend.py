"""Both backends record the same numbers (issue 15's cross-backend check, no GPU needed): the vLLM
adapter drives an engine double that samples from the transformers model's own processed
distribution (temperature, then top-p as vLLM applies it) and returns vLLM-shaped outputs with
k = vocabulary size log-probabilities; its top-k entropies (with the remainder bucket) and
log-probabilities must equal the transformers backend's exact ones on the same tokens."""

import pytest
import torch
from fakes import FakeLLM, vllm_backend, vllm_top_p

from siaflow.backends import Decoding, Request, make_backend
from siaflow.backends.vllm_backend import sample_seed
from siaflow.sampling import sample_tokens, stream_key, uniforms


class ModelLLM(FakeLLM):
    """vLLM over the transformers model: processed log-probabilities as vLLM computes them, and
    draws with the transformers backend's own uniforms (found from the sample's seed), so that both
    backends sample the same tokens and their statistics can be compared token by token."""

    def __init__(self, model, tokenizer, eos: int, key_of_seed: dict[int, int]):
        super().__init__(max_model_len=model.config.n_positions, eos=eos, tokenizer=tokenizer)
        self.model, self.key_of_seed, self._raw = model, key_of_seed, None

    def next_logprobs(self, token_ids, params):
        with torch.no_grad():
            logits = self.model(torch.tensor([token_ids])).logits[0, -1].float()
        self._raw = torch.log_softmax(logits / params.temperature, -1)
        return vllm_top_p(self._raw.double().tolist(), params.top_p)

    def draw(self, logprobs, params, seed, step):
        u = uniforms(torch.tensor([self.key_of_seed[seed]]), step)
        return int(sample_tokens(self._raw[None], u, params.top_p)[0])


@pytest.mark.parametrize("temperature,top_p", [(0.7, 1.0), (0.5, 0.9), (1.0, 0.8)])
def test_vllm_adapter_records_what_the_transformers_backend_records(tiny_model_dir, temperature, top_p):
    torch.set_num_threads(1)
    hf = make_backend("transformers", tiny_model_dir, batch_rows=16)
    hf.confidence_top_k = hf.model.config.vocab_size  # vLLM's top k is the whole vocabulary here
    prompts = ["Q: Eve has 5, gets 2. How many?\nA: ", "Q: Bob has 12.\nA: "]
    requests = [Request(tuple(hf.encode(p)), tuple(stream_key("cross", i, j) for j in range(2)))
                for i, p in enumerate(prompts)]
    dec = Decoding(temperature=temperature, top_p=top_p, max_new_tokens=12)
    keys = [k for r in requests for k in r.keys]
    vocab = hf.model.config.vocab_size
    engine = ModelLLM(hf.model, hf.tokenizer, hf.eos_token_ids[0], {sample_seed(k): k for k in keys})
    vl = vllm_backend(engine, logprobs=vocab, eos=hf.eos_token_ids)
    want = hf.generate(requests, dec, token_stats=True)
    got = vl.generate(requests, dec, token_stats=True)
    n_tokens = 0
    for ws, gs in zip(want, got):
        for w, g in zip(ws, gs):
            assert g.token_ids == w.token_ids and g.finish_reason == w.finish_reason
            assert g.entropies == pytest.approx(w.entropies, abs=2e-4)
            assert g.logprobs == pytest.approx(w.logprobs, abs=2e-4)
            assert g.confidence == pytest.approx(w.confidence, abs=2e-4)
            n_tokens += len(w.token_ids)
    assert n_tokens >= 20  # enough tokens compared to mean something
