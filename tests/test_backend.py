"""The transformers backend: determinism, batch invariance, shared-prefix equivalence, exact entropy."""

import math
from pathlib import Path

import pytest
import torch

from siaflow.generation.backends import Decoding, Request, make_backend
from siaflow.generation.sampling import stream_key


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    torch.set_num_threads(1)
    return make_backend("transformers", tiny_model_dir, batch_rows=64)


def _requests(backend, prompts, n, tag="t"):
    return [
        Request(tuple(backend.encode(p)), tuple(stream_key(tag, i, j) for j in range(n))) for i, p in enumerate(prompts)
    ]


PROMPTS = ["Q: Eve has 5, gets 2. How many?\nA: ", "Q: Bob has 12.\nA: ", "Q: x\nA: "]
DEC = Decoding(temperature=1.0, top_p=0.95, max_new_tokens=20)


def test_deterministic_for_a_seed(backend):
    a = backend.generate(_requests(backend, PROMPTS, 4), DEC, token_stats=True)
    b = backend.generate(_requests(backend, PROMPTS, 4), DEC, token_stats=True)
    assert [[g.token_ids for g in gs] for gs in a] == [[g.token_ids for g in gs] for gs in b]
    assert [[g.entropies for g in gs] for gs in a] == [[g.entropies for g in gs] for gs in b]
    c = backend.generate(_requests(backend, PROMPTS, 4, tag="other seed"), DEC)
    assert [[g.token_ids for g in gs] for gs in a] != [[g.token_ids for g in gs] for gs in c]


def test_samples_do_not_depend_on_batching_or_prefix_sharing(backend):
    together = backend.generate(_requests(backend, PROMPTS, 4), DEC)
    # each sample as its own one-row request (no KV sharing, different batch, padding, order)
    single = []
    for i, p in reversed(list(enumerate(PROMPTS))):
        for j in range(4):
            r = Request(tuple(backend.encode(p)), (stream_key("t", i, j),))
            single.append(((i, j), backend.generate([r], DEC)[0][0].token_ids))
    for (i, j), ids in single:
        assert together[i][j].token_ids == ids


def test_lengths_finish_reasons_and_stats(backend):
    gens = backend.generate(_requests(backend, PROMPTS, 8), DEC, token_stats=True)
    flat = [g for gs in gens for g in gs]
    assert all(len(g.token_ids) == len(g.logprobs) == len(g.entropies) for g in flat)
    assert all(len(g.token_ids) <= DEC.max_new_tokens for g in flat)
    for g in flat:
        assert g.finish_reason == (
            "length"
            if len(g.token_ids) == DEC.max_new_tokens and backend.eos_token_ids[0] not in g.token_ids
            else g.finish_reason
        )
        assert backend.eos_token_ids[0] not in g.token_ids  # the stop token is not part of the text
    assert {g.finish_reason for g in flat} <= {"stop", "length"}


def test_entropy_and_logprob_are_exact(backend):
    """Recompute with one plain forward pass over prompt + generated tokens: the entropy and the
    token's log-probability are those of the distribution it was drawn from (temperature, then the
    top-p nucleus renormalised), the full entropy that of the whole temperature-scaled
    distribution, self-certainty and DeepConf's confidence those of the raw logits (temperature 1)."""
    dec = Decoding(temperature=0.7, top_p=0.9, max_new_tokens=20)
    gen = backend.generate(_requests(backend, PROMPTS[:1], 1), dec, token_stats=True)[0][0]
    prompt = backend.encode(PROMPTS[0])
    ids = torch.tensor([prompt + gen.token_ids])
    with torch.no_grad():
        logits = backend.model(ids).logits[0, len(prompt) - 1 : len(prompt) - 1 + len(gen.token_ids)]
    lp = torch.log_softmax(logits.float() / dec.temperature, -1)
    ents, chosen = [], []
    for row, tok in zip(lp.double(), gen.token_ids):
        p = row.exp()
        order = p.argsort(descending=True)
        before = p[order].cumsum(0) - p[order]
        nucleus = order[before < dec.top_p]  # the smallest set of most probable tokens with mass >= top_p
        q = p[nucleus] / p[nucleus].sum()
        ents.append(float(-(q * q.log()).sum()))
        assert tok in nucleus.tolist()
        chosen.append(float(q[nucleus.tolist().index(tok)].log()))
    assert ents == pytest.approx(gen.entropies, abs=1e-4)
    assert chosen == pytest.approx(gen.logprobs, abs=1e-4)
    assert (-(lp.exp() * lp).sum(-1)).tolist() == pytest.approx(gen.entropies_full, abs=1e-4)
    raw = torch.log_softmax(logits.double(), -1)
    sc = -math.log(raw.shape[-1]) - raw.mean(-1)
    assert sc.tolist() == pytest.approx(gen.self_certainty, abs=1e-4)
    # DeepConf: minus the mean raw log-prob of the top k and of the drawn token when outside them
    conf = []
    for row, tok in zip(raw, gen.token_ids):
        top = set(row.argsort(descending=True)[: backend.confidence_top_k].tolist()) | {tok}
        conf.append(float(-row[sorted(top)].mean()))
    assert conf == pytest.approx(gen.confidence, abs=1e-4)


def test_greedy_is_rejected():
    with pytest.raises(ValueError, match="greedy"):
        Decoding(temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        Decoding(top_p=0.0)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        make_backend("nope", "x")


def test_rows_stop_at_the_model_context(tiny_model_dir):
    b = make_backend("transformers", tiny_model_dir, batch_rows=8)
    assert b.max_context == 96
    long_prompt = "Q: " + "1+1=2. " * 11 + "\nA: "  # 89 tokens with BOS: 7 tokens of room
    n_prompt = len(b.encode(long_prompt))
    gens = b.generate(_requests(b, [long_prompt, "Q: x\nA: "], 3), Decoding(max_new_tokens=40))
    for g in gens[0]:
        assert n_prompt + len(g.token_ids) <= 96
        assert g.finish_reason == "stop" or n_prompt + len(g.token_ids) == 96
    assert any(g.finish_reason == "length" and n_prompt + len(g.token_ids) == 96 for g in gens[0])
    with pytest.raises(ValueError, match="no room"):
        b.generate(_requests(b, ["9" * 120], 1), DEC)


def test_chat_prompts_use_the_model_template(tiny_model_dir, tmp_path):
    import polars as pl
    from transformers import AutoTokenizer

    from siaflow.inputs.datasets import build_prompts

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    tok.save_pretrained(tmp_path)
    import shutil

    for f in ("config.json", "model.safetensors", "generation_config.json"):
        if (Path(tiny_model_dir) / f).exists():
            shutil.copy(Path(tiny_model_dir) / f, tmp_path / f)
    b = make_backend("transformers", str(tmp_path))
    q = pl.DataFrame(
        {"question": ["2+2?"], "options": [None]}, schema={"question": pl.String, "options": pl.List(pl.String)}
    )
    texts, ids = build_prompts(b, {"template": "Solve: {question}", "chat": True, "system": "Be brief."}, q)
    assert texts[0] == "<system>Be brief.\n<user>Solve: 2+2?\n<assistant>"
    assert ids[0] == b.tokenizer(texts[0], add_special_tokens=False).input_ids  # no second BOS
    plain_texts, plain_ids = build_prompts(b, "Q: {question}\nA: ", q)
    assert plain_texts[0] == "Q: 2+2?\nA: " and plain_ids[0][0] == b.tokenizer.bos_token_id
    with pytest.raises(ValueError, match="no chat template"):
        build_prompts(make_backend("transformers", tiny_model_dir), {"template": "{question}", "chat": True}, q)


def test_stopping_at_the_settled_answer_changes_no_answer(backend):
    """Same seeds with and without early stopping: every sample's extracted answer is the same, each
    early-stopped sample is a prefix of its full run, and fewer tokens are generated."""
    from siaflow.answers import answer_is_final, extract_answer

    final = lambda text: answer_is_final(text, "numeric")  # noqa: E731
    prompt = backend.encode("Q: Eve has 5, gets 2. How many?\nA: ")
    # answer-bearing prefixes: none yet, a marker with a digit that may go on, an already settled one
    prefixes = [backend.encode(t) for t in ("5+2=7. ", "5+2=7. #### 1", "5+2=7. ####", "5+2=7. #### 7\n")]
    reqs = [
        Request(tuple(prompt + p), tuple(stream_key("stop", i, j) for j in range(16)), answer_start=len(prompt))
        for i, p in enumerate(prefixes)
    ]
    dec = Decoding(temperature=1.0, top_p=1.0, max_new_tokens=40)
    full = backend.generate(reqs, dec)
    early = backend.generate(reqs, dec, answer_final=final)
    n_full = n_early = n_settled = 0
    for p, fs, es in zip(prefixes, full, early):
        for f, e in zip(fs, es):
            assert extract_answer(backend.decode(p + e.token_ids), "numeric") == extract_answer(
                backend.decode(p + f.token_ids), "numeric"
            )
            assert f.token_ids[: len(e.token_ids)] == e.token_ids
            if e.finish_reason == "answer":
                n_settled += 1
                assert final(backend.decode(p + e.token_ids))
                assert len(e.token_ids) == 0 or not final(backend.decode(p + e.token_ids[:-1]))  # not a token later
            else:
                assert e.token_ids == f.token_ids and e.finish_reason == f.finish_reason
            n_full += len(f.token_ids)
            n_early += len(e.token_ids)
    assert all(e.token_ids == [] and e.finish_reason == "answer" for e in early[3])  # settled by its prefix
    assert n_settled >= 16 and n_early < n_full


def test_answer_watch_matches_a_full_decode(backend):
    """The windowed watch settles at exactly the token where a full decode first says final."""
    import random

    from siaflow.answers import answer_is_final
    from siaflow.generation.backends.base import TextWatch

    rng = random.Random(0)
    pieces = ["12", "3", " ", "#", "##", "####", "\n", "x", ".", ",", "5"]
    for _ in range(200):
        ids = backend.encode("".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
        watch = TextWatch(backend.decode, ids[:3], answer_final=lambda t: answer_is_final(t, "numeric"))
        expect = next((t for t in range(3, len(ids) + 1) if answer_is_final(backend.decode(ids[:t]), "numeric")), None)
        if expect == 3:
            assert watch.done
            continue
        got = next((t + 1 for t in range(3, len(ids)) if watch.push(ids[t])), None)
        assert got == expect


def test_stop_string_watch_cuts_exactly_the_stop_string(backend):
    """A stop string ends a sample at the token that completes it, and the tokens cut are those
    that write it: the kept text is the full text up to the stop string. One inside the prefix
    never counts."""
    import random

    from siaflow.generation.backends.base import TextWatch

    rng = random.Random(1)
    pieces = ["12", "3", " ", "Q", "\n", "\n\n", "x", "Q:", "5"]
    stop = "\n\nQ:"
    checked = 0
    for _ in range(300):
        ids = backend.encode("".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))))
        watch = TextWatch(backend.decode, ids[:2], stop=(stop,))
        prefix_hits = backend.decode(ids[:2]).count(stop)
        first = next((t for t in range(3, len(ids) + 1) if backend.decode(ids[:t]).count(stop) > prefix_hits), None)
        got = next((t + 1 for t in range(2, len(ids)) if watch.push(ids[t]) == "stop_sequence"), None)
        assert got == first
        if got is not None:
            checked += 1
            kept = backend.decode(ids[: got - watch.cut])
            text = backend.decode(ids[:got])
            pos = text.rfind(stop)  # nothing of the stop string is kept, but the prefix is never cut
            assert text.startswith(kept) and len(kept) <= max(pos, len(backend.decode(ids[:2])))
            if watch.cut and got - watch.cut > 2:  # and everything before it is
                assert len(backend.decode(ids[: got - watch.cut + 1])) > pos
    assert checked > 30


@pytest.mark.parametrize("temperature", [0.3, 1.0])
def test_shared_rows_give_the_same_samples_and_do_each_history_once(tiny_model_dir, temperature):
    """One model row per distinct token history (a trie of the samples) changes no sample, no
    log-probability and no entropy; the decode work is the trie's size, the plain work one row
    per sample and token."""
    dec = Decoding(temperature=temperature, top_p=0.95, max_new_tokens=20)
    shared = make_backend("transformers", tiny_model_dir, batch_rows=64)
    plain = make_backend("transformers", tiny_model_dir, batch_rows=64, share_rows=False)
    # the first prompt twice (equal prefixes of two trajectories), with different keys
    prompts = PROMPTS + PROMPTS[:1]
    reqs = [
        Request(tuple(shared.encode(p)), tuple(stream_key("share", i, j) for j in range(12)))
        for i, p in enumerate(prompts)
    ]
    a = shared.generate(reqs, dec, token_stats=True)
    b = plain.generate(reqs, dec, token_stats=True)
    for ga, gb in zip((g for gs in a for g in gs), (g for gs in b for g in gs)):
        assert (ga.token_ids, ga.finish_reason) == (gb.token_ids, gb.finish_reason)
        assert ga.logprobs == pytest.approx(gb.logprobs, abs=1e-5)
        assert ga.entropies == pytest.approx(gb.entropies, abs=1e-5)
    per_sample = sum(g.n_sampled for gs in b for g in gs)
    assert plain.stats["decoded_tokens"] == per_sample
    assert plain.stats["prefill_tokens"] == sum(len(r.prompt_ids) for r in reqs)
    trie = {(r.prompt_ids, tuple(g.token_ids[:t])) for r, gs in zip(reqs, a) for g in gs for t in range(g.n_sampled)}
    assert shared.stats["decoded_tokens"] == len(trie) < per_sample
    assert shared.stats["prefill_tokens"] == sum(len(r.prompt_ids) for r in reqs[: len(PROMPTS)])


def test_nested_prefixes_walk_one_path_and_give_the_same_samples(tiny_model_dir):
    """Checkpoint prefixes of one trajectory (question prompt + its first k tokens, k = 0, 3, 7)
    start at the question prompt's row and walk their prefix as forced tokens: the samples equal
    a full prefill of each prompt, the prompt is prefilled once, and the decode work is the trie
    of all histories walked or sampled."""
    dec = Decoding(temperature=0.5, top_p=1.0, max_new_tokens=12)
    shared = make_backend("transformers", tiny_model_dir, batch_rows=64)
    plain = make_backend("transformers", tiny_model_dir, batch_rows=64, share_rows=False)
    question = tuple(shared.encode(PROMPTS[0]))
    traj = [g.token_ids for g in plain.generate([Request(question, (stream_key("traj"),))], dec)[0]][0]
    traj = (traj * 3)[:9]
    plain.stats["decoded_tokens"] = 0
    reqs = [
        Request(
            question + tuple(traj[:k]), tuple(stream_key("nested", k, j) for j in range(10)), answer_start=len(question)
        )
        for k in (0, 3, 7)
    ]
    reqs.append(Request(tuple(shared.encode(PROMPTS[1])), tuple(stream_key("other", j) for j in range(5))))
    a = shared.generate(reqs, dec, token_stats=True)
    b = plain.generate(reqs, dec, token_stats=True)
    for ga, gb in zip((g for gs in a for g in gs), (g for gs in b for g in gs)):
        assert (ga.token_ids, ga.finish_reason) == (gb.token_ids, gb.finish_reason)
        assert ga.logprobs == pytest.approx(gb.logprobs, abs=1e-5)
    assert shared.stats["prefill_tokens"] == len(question) + len(reqs[3].prompt_ids)
    trie = set()
    for r, gs in zip(reqs, a):
        root = r.prompt_ids[: r.answer_start] if r.answer_start is not None else r.prompt_ids
        walk = r.prompt_ids[len(root) :]
        trie |= {(root, walk[:d]) for d in range(len(walk))}
        trie |= {(root, walk + tuple(g.token_ids[:t])) for g in gs for t in range(g.n_sampled)}
    assert shared.stats["decoded_tokens"] == len(trie)
    assert plain.stats["decoded_tokens"] == sum(g.n_sampled for gs in b for g in gs)


def test_a_request_budget_caps_its_samples(backend):
    """A continuation completes a response of at most max_new_tokens: its request may add only
    what is left; none left means no sample at all (finish reason "length", no tokens)."""
    prompt = tuple(backend.encode("Q: Eve has 5, gets 3. How many?\nA: "))
    dec = Decoding(temperature=1.0, top_p=1.0, max_new_tokens=20)
    out = backend.generate(
        [
            Request(prompt, (1, 2, 3), max_new_tokens=3),
            Request(prompt, (4, 5), max_new_tokens=0),
            Request(prompt, (6,)),
        ],
        dec,
        token_stats=True,
    )
    assert all(len(g.token_ids) <= 3 for g in out[0]) and any(g.finish_reason == "length" for g in out[0])
    assert [(g.token_ids, g.finish_reason, g.entropies) for g in out[1]] == [([], "length", [])] * 2
    assert Request(prompt, (1,), max_new_tokens=50).budget(dec) == 20 and Request(prompt, (1,)).budget(dec) == 20


def test_continuations_get_what_is_left_of_the_response_budget(backend):
    """The continuation of a k-token prefix is asked for max_new_tokens - k new tokens."""
    from siaflow.answers import ResponseRules
    from siaflow.generation.rollouts import continue_prefixes
    from siaflow.generation.settings import DrawSettings

    prompt = backend.encode("Q: Eve has 5, gets 3. How many?\nA: ")
    dec = Decoding(temperature=1.0, top_p=1.0, max_new_tokens=12)
    prefixes = [("q", 0, k, backend.encode("5+3=8. #### 8")[:k], prompt) for k in (0, 4, 12)]
    df, _ = continue_prefixes(backend, prefixes, draw=DrawSettings(dec, 0, 4), rules=ResponseRules(lambda t: t))
    for k in (0, 4, 12):
        assert df.filter(df["k"] == k)["n_generated"].max() <= 12 - k
    assert set(df.filter(df["k"] == 12)["finish_reason"]) == {"length"}
