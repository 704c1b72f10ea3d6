"""Hugging Face transformers backend: any causal LM, CPU or one CUDA GPU.

* at every step, exactly (``sampling.distribution_stats``): the token's log-probability under the
  distribution it was drawn from (logits / temperature, renormalised over the top-p nucleus), that
  distribution's entropy and the whole temperature-scaled one's, and, of the raw logits
  (temperature 1), self-certainty and DeepConf's confidence (``Generation``);
* one prefill per distinct prompt, and one model row per distinct token history: the K samples of
  a prefix (and of equal prefixes of different trajectories) share a row until their tokens
  differ, when the row's KV cache is copied (``reorder_cache``), so identical work is done once;
* rows that finish (EOS / stop token / length, or their answer is settled) leave the batch;
* batch-invariant sampling through per-row stream keys (``siaflow.generation.sampling``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from siaflow.generation.backends.base import (
    TOKEN_STAT_FIELDS,
    BackendInfo,
    Decoding,
    Generation,
    HFTokenizerBackend,
    Request,
    local_build,
    local_revision,
    progress_bar,
    text_watch,
    unsampled,
)
from siaflow.generation.backends.engine_settings import TransformersSettings
from siaflow.generation.sampling import distribution_stats, sample_tokens, sorted_nucleus, uniforms


class TransformersBackend(HFTokenizerBackend):
    """Any causal LM through transformers, run as ``settings`` say (``engine_settings``); ``label``
    names the model in errors."""

    def __init__(
        self,
        model: str,
        settings: TransformersSettings | None = None,
        *,
        revision: str | None = None,
        label: str | None = None,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        s = settings or TransformersSettings()
        device, dtype, remote = s.device, s.dtype, s.trust_remote_code
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
        if dtype == "auto" and self.device.type == "cpu":
            torch_dtype = torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision, trust_remote_code=remote)
        self.model = (
            AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=torch_dtype, trust_remote_code=remote)
            .to(self.device)
            .eval()
        )
        eos = self.model.generation_config.eos_token_id if self.model.generation_config is not None else None
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        self.eos_token_ids = tuple(dict.fromkeys([*eos, *s.stop_token_ids]))
        if not self.eos_token_ids:
            raise ValueError(f"model {label or model!r} defines no EOS token and no stop_token_ids were given")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.batch_rows = s.batch_rows
        self.share_rows = s.share_rows
        self.confidence_top_k = s.confidence_top_k  # DeepConf's k (vLLM's `logprobs`, 20 by default)
        # work actually done: prompt tokens prefilled, and decode-step rows (distinct token histories)
        self.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
        cfg = self.model.config
        self.max_context = int(
            getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 0) or 1 << 30
        )
        self.info = BackendInfo(
            name="transformers",
            model=str(model),
            revision=local_revision(str(model), revision),
            entropy_kind="exact",
            settings={
                "dtype": str(self.model.dtype),
                "device": self.device.type,
                "share_rows": s.share_rows,
                "confidence_top_k": s.confidence_top_k,
            },
            extra={"device": str(self.device), "batch_rows": s.batch_rows, "build": local_build(str(model))},
        )

    # ---------------------------------------------------------------------------------------
    def generate(
        self,
        requests: list[Request],
        decoding: Decoding,
        *,
        token_stats: bool = False,
        progress: str | None = None,
        answer_final=None,
    ) -> list[list[Generation]]:
        watches = [text_watch(self.decode, r, answer_final) for r in requests]
        stats = TOKEN_STAT_FIELDS if token_stats else ()
        results: list[list[Generation | None]] = [
            unsampled(r, w, r.budget(decoding), stats) or [None] * r.n for r, w in zip(requests, watches)
        ]
        chunks = self._chunks(requests, [i for i, r in enumerate(results) if r and r[0] is None])
        bar = progress_bar(sum(len(k) for chunk in chunks for _, _, k in chunk), progress)
        with torch.inference_mode():
            for chunk in chunks:
                gens = self._run_chunk(
                    [requests[i].prompt_ids for i, _, _ in chunk],
                    [k for _, _, k in chunk],
                    decoding,
                    token_stats,
                    [watches[i] for i, _, _ in chunk],
                    [requests[i].answer_start for i, _, _ in chunk],
                    [requests[i].budget(decoding) for i, _, _ in chunk],
                )
                pos = 0
                for i, s, keys in chunk:
                    for j in range(len(keys)):
                        results[i][s + j] = gens[pos]
                        pos += 1
                if bar is not None:
                    bar.update(pos)
        if bar is not None:
            bar.close()
        return results  # type: ignore[return-value]

    def _chunks(self, requests: list[Request], todo: list[int]) -> list[list[tuple[int, int, list[int]]]]:
        """The batches of the requests ``todo``: pieces (request index, first sample index, keys) of
        at most ``batch_rows`` rows, a request larger than a batch split; with ``share_rows``,
        requests with equal or nested prompts in the same batches (more to share)."""
        pieces = [
            (i, s, requests[i].keys[s : s + self.batch_rows])
            for i in todo
            for s in range(0, requests[i].n, self.batch_rows)
        ]
        if self.share_rows:
            pieces.sort(key=lambda p: requests[p[0]].prompt_ids)
        chunks, cur, rows = [], [], 0
        for p in pieces:
            if cur and rows + len(p[2]) > self.batch_rows:
                chunks.append(cur)
                cur, rows = [], 0
            cur.append(p)
            rows += len(p[2])
        return [*chunks, cur] if cur else chunks

    def _run_chunk(
        self, prompts, keys, decoding: Decoding, token_stats: bool, watches=None, starts=None, budgets=None
    ) -> list[Generation]:
        """Sample every key of every prompt.

        With ``share_rows`` the batch is a trie of token histories: samples whose histories are
        equal share one model row; its logits are computed once, each sample draws its next token
        from them with its own uniform, and the row splits where their tokens differ. A prompt with
        an answer start (a checkpoint prefix: question prompt + trajectory prefix) starts at its
        question prompt's row and walks its prefix as forced tokens, so the prefixes of one
        trajectory are one path, and a continuation that repeats the trajectory shares that path's
        rows. The samples are those of one row per sample after a prefill of its whole prompt; only
        repeated computation is gone."""
        too_long = [len(p) for p in prompts if len(p) >= self.max_context]
        if too_long:
            raise ValueError(
                f"a prompt of {too_long[0]} tokens leaves no room in the model's context of {self.max_context}"
            )
        plan = self._plan_rows(prompts, keys, starts or [None] * len(prompts))
        st = self._prefill(plan)
        budgets = budgets or [decoding.max_new_tokens] * len(prompts)
        out = _Outputs(keys, decoding.max_new_tokens, watches or [None] * len(prompts))
        # a sample also ends ("length") when prompt + generated tokens fill the model's context
        out.limit = torch.tensor(
            [min(b, self.max_context - len(p)) for p, ks, b in zip(prompts, keys, budgets) for _ in ks],
            dtype=torch.long,
        )
        stop_ids = torch.tensor(self.eos_token_ids, dtype=torch.long)
        while True:
            lp_rows = torch.log_softmax(st.logits.float() / decoding.temperature, dim=-1).cpu()  # (rows, vocab)
            self.stats["decoded_tokens"] += lp_rows.shape[0]
            done = self._step(st, plan, out, lp_rows, decoding, token_stats, stop_ids)
            if done.all():
                break
            self._advance(st, lp_rows, done)
        return out.generations(token_stats)

    def _plan_rows(self, prompts, keys, starts) -> _Plan:
        """Where each sample starts: its root row (with shared rows, one per distinct question
        prompt, else one per prompt) and the forced tokens its prompt walks after the root."""
        counts = torch.tensor([len(k) for k in keys])  # (prompts,)
        cut = [st if self.share_rows and st is not None else len(p) for p, st in zip(prompts, starts)]
        distinct: dict[tuple, int] = {}
        root = [
            distinct.setdefault(tuple(p[:c]), len(distinct)) if self.share_rows else i
            for i, (p, c) in enumerate(zip(prompts, cut))
        ]
        rows_in = [list(p) for p in distinct] if self.share_rows else [list(p) for p in prompts]
        forced_len = torch.tensor([len(p) - c for p, c in zip(prompts, cut)])  # (prompts,)
        forced = torch.zeros((len(prompts), max(1, int(forced_len.max()))), dtype=torch.long)  # (prompts, walk)
        for i, (p, c) in enumerate(zip(prompts, cut)):
            forced[i, : len(p) - c] = torch.tensor(p[c:], dtype=torch.long)
        return _Plan(
            rows_in=rows_in,
            forced=forced,
            forced_len=forced_len,
            srow=torch.repeat_interleave(torch.tensor(root), counts),  # (samples,)
            req=torch.repeat_interleave(torch.arange(len(prompts)), counts),  # (samples,)
            row_keys=torch.tensor([k for ks in keys for k in ks], dtype=torch.int64),
        )  # (samples,)

    def _prefill(self, plan: _Plan) -> _State:
        """One forward pass over the root rows (left-padded, so every row's next token sits at the
        end); without shared rows, each sample then gets a row of its own."""
        dev, rows_in = self.device, plan.rows_in
        ids, att, pos = (x.to(dev) for x in left_padded(rows_in, self.pad_id))  # (roots, width)
        self.stats["prefill_tokens"] += sum(len(p) for p in rows_in)
        out = self.model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True)
        st = _State(
            cache=out.past_key_values,
            logits=out.logits[:, -1, :],
            att=att,
            next_pos=pos[:, -1] + 1,
            srow=plan.srow,
            alive=torch.arange(len(plan.srow)),
            depth=torch.zeros(len(plan.srow), dtype=torch.long),
        )
        if not self.share_rows:  # one model row per sample from the start
            self._reorder(st.cache, st.srow, dev)
            rows = st.srow.to(dev)
            st.logits, st.att, st.next_pos = st.logits[rows], st.att[rows], st.next_pos[rows]
            st.srow = torch.arange(len(st.srow))
        return st

    def _step(
        self, st: _State, plan: _Plan, out: _Outputs, lp_rows, decoding: Decoding, token_stats: bool, stop_ids
    ) -> torch.Tensor:
        """One token for every alive sample: a forced token while it walks its prefix, else a
        draw from its row's distribution with its own uniform. Records the draws; returns which
        samples ended (EOS, token limit, settled answer or stop string), shape (alive,)."""
        flen = plan.forced_len[plan.req[st.alive]]  # (alive,)
        free = st.depth >= flen  # past its prefix: sampling (else: walking it)
        t = st.depth - flen  # a free sample's own generation step
        st.tok = plan.forced[plan.req[st.alive], st.depth.clamp(max=plan.forced.shape[1] - 1)]  # (alive,)
        done = torch.zeros(len(st.alive), dtype=torch.bool)
        if not free.any():
            return done
        fi = free.nonzero().squeeze(-1)
        f_alive, f_t, f_row = st.alive[fi], t[fi], st.srow[fi]  # (free,)
        identity = lp_rows.shape[0] == len(fi) and f_row.equal(torch.arange(len(fi)))
        lp = lp_rows if identity else lp_rows[f_row]  # (free, vocab)
        # with token statistics the nucleus is sorted once per model row, for the draw and the stats
        rows_nucleus = sorted_nucleus(lp_rows, decoding.top_p) if token_stats and decoding.top_p < 1 else None
        f_nucleus = None if rows_nucleus is None else tuple(x if identity else x[f_row] for x in rows_nucleus)
        f_tok = sample_tokens(lp, uniforms(plan.row_keys[f_alive], f_t), decoding.top_p, f_nucleus)  # (free,)
        st.tok[fi] = f_tok
        out.toks[f_alive, f_t] = f_tok
        if token_stats:  # sampling.distribution_stats: of the rows just drawn from, and of the raw logits
            stats = distribution_stats(
                st.logits.float().cpu(),
                f_tok,
                temperature=decoding.temperature,
                top_p=decoding.top_p,
                k=self.confidence_top_k,
                rows=f_row,
                scaled=lp_rows,
                nucleus=rows_nucleus,
            )  # each (free,)
            for name, values in stats.items():
                out.stats[name][f_alive, f_t] = values.float()
        done[fi] = out.finish(f_alive, f_t, f_tok, stop_ids)
        return done

    def _advance(self, st: _State, lp_rows, done) -> None:
        """Drop the ended samples, give the rest their next model rows (with shared rows one per
        distinct (row, token); the KV cache is reordered to match) and run one decode step."""
        dev, vocab = self.device, lp_rows.shape[-1]
        keep = (~done).nonzero().squeeze(-1)
        st.alive, st.tok, st.srow, st.depth = st.alive[keep], st.tok[keep], st.srow[keep], st.depth[keep] + 1
        if self.share_rows:
            combo, st.srow = torch.unique(st.srow * vocab + st.tok, return_inverse=True)
            parent, step_tok = combo // vocab, combo % vocab  # (rows',)
        else:
            parent, step_tok, st.srow = st.srow, st.tok, torch.arange(len(st.alive))
        if not (len(parent) == lp_rows.shape[0] and parent.equal(torch.arange(len(parent)))):
            self._reorder(st.cache, parent, dev)
            st.att, st.next_pos = st.att[parent.to(dev)], st.next_pos[parent.to(dev)]
        st.att = torch.cat([st.att, torch.ones((st.att.shape[0], 1), dtype=st.att.dtype, device=dev)], dim=1)
        out = self.model(
            input_ids=step_tok[:, None].to(dev),
            attention_mask=st.att,
            position_ids=st.next_pos[:, None],
            past_key_values=st.cache,
            use_cache=True,
        )
        st.cache, st.logits = out.past_key_values, out.logits[:, -1, :]  # logits: (rows', vocab)
        st.next_pos = st.next_pos + 1

    @staticmethod
    def _reorder(cache, index: torch.Tensor, dev) -> None:
        """Keep (and repeat) the cache rows ``index``, in that order."""
        cache.reorder_cache(index.to(dev))


def left_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token rows left-padded to one width, so that every row ends at the last column: input ids,
    attention mask and position ids counted from each row's own first token, each (rows, width)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        att[i, width - len(r) :] = 1
    return ids, att, (att.cumsum(-1) - 1).clamp_(min=0)


@dataclass
class _Plan:
    """A chunk's samples on model rows before decoding (see ``_plan_rows``)."""

    rows_in: list[list[int]]  # token ids of each root row (prefilled)
    forced: torch.Tensor  # (prompts, walk) tokens each prompt walks after its root, zero-padded
    forced_len: torch.Tensor  # (prompts,) how many of them
    srow: torch.Tensor  # (samples,) each sample's root row
    req: torch.Tensor  # (samples,) each sample's prompt
    row_keys: torch.Tensor  # (samples,) each sample's random stream key


@dataclass
class _State:
    """The decode loop's state: the model rows and the samples still going."""

    cache: object  # the model's KV cache, one entry per model row
    logits: torch.Tensor  # (rows, vocab) next-token logits of each model row
    att: torch.Tensor  # (rows, width) attention mask, growing by one column per step
    next_pos: torch.Tensor  # (rows,) position id of each row's next token
    srow: torch.Tensor  # (alive,) model row of each alive sample
    alive: torch.Tensor  # (alive,) the samples still going (indices into all samples)
    depth: torch.Tensor  # (alive,) tokens each alive sample is past its root
    tok: torch.Tensor | None = None  # (alive,) each alive sample's latest token


class _Outputs:
    """Per-sample results of a chunk: tokens, statistics, length, finish reason, cut."""

    def __init__(self, keys, max_new: int, watches):
        n = sum(len(k) for k in keys)
        self.toks = torch.zeros((n, max_new), dtype=torch.long)  # (samples, max_new)
        # per-token statistics, by Generation field (sampling.distribution_stats)
        self.stats = {name: torch.zeros((n, max_new), dtype=torch.float32) for name in TOKEN_STAT_FIELDS}
        self.length = torch.full((n,), max_new, dtype=torch.long)  # (samples,)
        self.limit = torch.full((n,), max_new, dtype=torch.long)  # (samples,)
        self.reason = ["length"] * n
        self.cut = [0] * n
        # one answer watch per sample (a copy of its prompt's), or None where no early stop applies
        self.watch = [w.copy() if w is not None else None for w, ks in zip(watches, keys) for _ in ks]
        self.watching = any(w is not None for w in self.watch)

    def finish(self, f_alive, f_t, f_tok, stop_ids) -> torch.Tensor:
        """Which of the samples that just drew ``f_tok`` at step ``f_t`` end there, and why."""
        stop = torch.isin(f_tok, stop_ids)
        ended = torch.zeros_like(stop)  # its answer settled, or it wrote a stop string
        if self.watching:
            for j, (r, x) in enumerate(zip(f_alive.tolist(), f_tok.tolist())):
                if self.watch[r] is not None and not stop[j]:
                    why = self.watch[r].push(x)
                    if why is not None:
                        ended[j], self.reason[r], self.cut[r] = True, why, self.watch[r].cut
        full = ~stop & ~ended & (self.limit[f_alive] <= f_t + 1)
        self.length[f_alive[stop]] = f_t[stop]
        self.length[f_alive[full | ended]] = f_t[full | ended] + 1
        for r in f_alive[stop].tolist():
            self.reason[r] = "stop"
        return stop | full | ended

    def generations(self, token_stats: bool) -> list[Generation]:
        gens = []
        for r in range(len(self.reason)):
            n = int(self.length[r]) - self.cut[r]  # a stop string's tokens are not part of the response
            gens.append(
                Generation(
                    token_ids=self.toks[r, :n].tolist(),
                    finish_reason=self.reason[r],
                    cut=self.cut[r],
                    **{name: v[r, :n].tolist() if token_stats else None for name, v in self.stats.items()},
                )
            )
        return gens
