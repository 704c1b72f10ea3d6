"""Hugging Face transformers backend: any causal LM, CPU or one CUDA GPU.

* exact full-vocabulary token entropy, chosen-token log-probability and self-certainty at every step;
* one prefill per distinct prompt, and one model row per distinct token history: the K samples of
  a prefix (and of equal prefixes of different trajectories) share a row until their tokens
  differ, when the row's KV cache is copied (``reorder_cache``), so identical work is done once;
* rows that finish (EOS / stop token / length, or their answer is settled) leave the batch;
* batch-invariant sampling through per-row stream keys (``siaflow.sampling``).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from siaflow.backends.base import Backend, BackendInfo, Decoding, Generation, Request, text_watch
from siaflow.sampling import sample_tokens, self_certainty, token_entropy, uniforms


def local_revision(path: Path) -> str:
    """Content hash of a local model's weights: the revision of a model that has no hub commit."""
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".json"} and p.name != "siaflow_training.json")
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return "sha256:" + h.hexdigest()[:16]


class TransformersBackend(Backend):
    def __init__(self, model: str, revision: str | None = None, device: str = "auto", dtype: str = "auto",
                 batch_rows: int = 256, stop_token_ids: tuple[int, ...] = (), trust_remote_code: bool = False,
                 share_rows: bool = True):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        if dtype == "auto" and self.device.type == "cpu":
            torch_dtype = torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
        self.model = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=torch_dtype,
                                                          trust_remote_code=trust_remote_code).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id if self.model.generation_config is not None else None
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        self.eos_token_ids = tuple(dict.fromkeys([*eos, *stop_token_ids]))
        if not self.eos_token_ids:
            raise ValueError(f"model {model!r} defines no EOS token and no stop_token_ids were given")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.batch_rows = batch_rows
        self.share_rows = share_rows
        # work actually done: prompt tokens prefilled, and decode-step rows (distinct token histories)
        self.stats = {"prefill_tokens": 0, "decoded_tokens": 0}
        cfg = self.model.config
        self.max_context = int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 0) or 1 << 30)
        path = Path(model)
        rev = revision or (local_revision(path) if path.is_dir() else None)
        from siaflow.models import build_record

        self.info = BackendInfo(name="transformers", model=str(model), revision=rev, entropy_kind="exact",
                                extra={"device": str(self.device), "dtype": str(self.model.dtype), "batch_rows": batch_rows,
                                       "share_rows": share_rows, "build": build_record(path) if path.is_dir() else None})

    # ---------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text).input_ids)

    def encode_chat(self, messages: list[dict]) -> tuple[str, list[int]]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"model {self.info.model!r} has no chat template; use a plain prompt template for it")
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---------------------------------------------------------------------------------------
    def generate(self, requests: list[Request], decoding: Decoding, *, token_stats: bool = False,
                 progress: str | None = None, answer_final=None) -> list[list[Generation]]:
        results: list[list[Generation | None]] = [[None] * r.n for r in requests]
        watches = [text_watch(self.decode, r, answer_final) for r in requests]
        for i, r in enumerate(requests):
            settled = watches[i] is not None and watches[i].done  # the prefix settles the answer
            if settled or r.budget(decoding) == 0:  # or the response has no tokens left: nothing to generate
                results[i] = [Generation(token_ids=[], finish_reason="answer" if settled else "length",
                                         **({"logprobs": [], "entropies": [], "self_certainty": []}
                                            if token_stats else {})) for _ in r.keys]
        # pieces: (request index, first sample index, keys); a request larger than a batch is split
        pieces = []
        for i, r in enumerate(requests):
            if results[i] and results[i][0] is not None:
                continue
            for s in range(0, r.n, self.batch_rows):
                pieces.append((i, s, r.keys[s: s + self.batch_rows]))
        if self.share_rows:  # requests with equal or nested prompts in the same batches: more to share
            pieces.sort(key=lambda p: requests[p[0]].prompt_ids)
        chunks, cur, rows = [], [], 0
        for p in pieces:
            if cur and rows + len(p[2]) > self.batch_rows:
                chunks.append(cur)
                cur, rows = [], 0
            cur.append(p)
            rows += len(p[2])
        if cur:
            chunks.append(cur)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=sum(len(p[2]) for p in pieces), desc=progress, unit="seq", file=sys.stderr,
                       mininterval=10, dynamic_ncols=False, ncols=100)
        with torch.inference_mode():
            for chunk in chunks:
                gens = self._run_chunk([requests[i].prompt_ids for i, _, _ in chunk], [k for _, _, k in chunk],
                                       decoding, token_stats, [watches[i] for i, _, _ in chunk],
                                       [requests[i].answer_start for i, _, _ in chunk],
                                       [requests[i].budget(decoding) for i, _, _ in chunk])
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

    def _run_chunk(self, prompts, keys, decoding: Decoding, token_stats: bool, watches=None,
                   starts=None, budgets=None) -> list[Generation]:
        """Sample every key of every prompt.

        With ``share_rows`` the batch is a trie of token histories: samples whose histories are
        equal share one model row; its logits are computed once, each sample draws its next token
        from them with its own uniform, and the row splits where their tokens differ. A prompt with
        an answer start (a checkpoint prefix: question prompt + trajectory prefix) starts at its
        question prompt's row and walks its prefix as forced tokens, so the prefixes of one
        trajectory are one path, and a continuation that repeats the trajectory shares that path's
        rows. The samples are those of one row per sample after a prefill of its whole prompt; only
        repeated computation is gone."""
        dev = self.device
        too_long = [len(p) for p in prompts if len(p) >= self.max_context]
        if too_long:
            raise ValueError(f"a prompt of {too_long[0]} tokens leaves no room in the model's context of {self.max_context}")
        counts = torch.tensor([len(k) for k in keys])
        # roots: with shared rows, the distinct question prompts (or whole prompts), the rest of a
        # prompt walked as forced tokens; else every prompt whole
        cut = [st if self.share_rows and st is not None else len(p)
               for p, st in zip(prompts, starts or [None] * len(prompts))]
        distinct: dict[tuple, int] = {}
        root = [distinct.setdefault(tuple(p[:c]), len(distinct)) if self.share_rows else i
                for i, (p, c) in enumerate(zip(prompts, cut))]
        rows_in = [list(p) for p in distinct] if self.share_rows else [list(p) for p in prompts]
        forced_len = torch.tensor([len(p) - c for p, c in zip(prompts, cut)])
        forced = torch.zeros((len(prompts), max(1, int(forced_len.max()))), dtype=torch.long)
        for i, (p, c) in enumerate(zip(prompts, cut)):
            forced[i, :len(p) - c] = torch.tensor(p[c:], dtype=torch.long)
        srow = torch.repeat_interleave(torch.tensor(root), counts)
        width = max(len(p) for p in rows_in)
        ids = torch.full((len(rows_in), width), self.pad_id, dtype=torch.long)
        att = torch.zeros((len(rows_in), width), dtype=torch.long)
        for i, p in enumerate(rows_in):  # left padding: every row's next token sits at the end
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            att[i, width - len(p):] = 1
        self.stats["prefill_tokens"] += sum(len(p) for p in rows_in)
        ids, att = ids.to(dev), att.to(dev)
        pos = (att.cumsum(-1) - 1).clamp_(min=0)
        out = self.model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True)
        cache, logits, next_pos = out.past_key_values, out.logits[:, -1, :], pos[:, -1] + 1
        if not self.share_rows:  # one model row per sample from the start
            self._reorder(cache, srow, dev)
            logits, att, next_pos = logits[srow.to(dev)], att[srow.to(dev)], next_pos[srow.to(dev)]
            srow = torch.arange(len(srow))
        row_keys = torch.tensor([k for ks in keys for k in ks], dtype=torch.int64)
        req = torch.repeat_interleave(torch.arange(len(prompts)), counts)   # each sample's prompt
        # a sample also ends ("length") when prompt + generated tokens fill the model's context
        budgets = budgets or [decoding.max_new_tokens] * len(prompts)
        limit = torch.tensor([min(b, self.max_context - len(p)) for p, ks, b in zip(prompts, keys, budgets)
                              for _ in ks], dtype=torch.long)
        n_rows, max_new = len(row_keys), decoding.max_new_tokens
        toks = torch.zeros((n_rows, max_new), dtype=torch.long)
        lps = torch.zeros((n_rows, max_new), dtype=torch.float32)
        ents = torch.zeros((n_rows, max_new), dtype=torch.float32)
        certs = torch.zeros((n_rows, max_new), dtype=torch.float32)
        length = torch.full((n_rows,), max_new, dtype=torch.long)
        reason = ["length"] * n_rows
        cut = [0] * n_rows
        # one answer watch per sample (a copy of its prompt's), or None where no early stop applies
        row_watch = [w.copy() if w is not None else None for w, ks in zip(watches or [None] * len(prompts), keys)
                     for _ in ks]
        watching = any(w is not None for w in row_watch)
        alive = torch.arange(n_rows)   # the samples still going; srow[i]: the model row of alive[i]
        depth = torch.zeros(n_rows, dtype=torch.long)  # tokens each alive sample is past its root
        stop_ids = torch.tensor(self.eos_token_ids, dtype=torch.long)
        while True:
            lp_rows = torch.log_softmax(logits.float() / decoding.temperature, dim=-1).cpu()
            self.stats["decoded_tokens"] += lp_rows.shape[0]
            flen = forced_len[req[alive]]
            free = depth >= flen                  # past its prefix: sampling (else: walking it)
            t = depth - flen                      # a free sample's own generation step
            tok = forced[req[alive], depth.clamp(max=forced.shape[1] - 1)]
            done = torch.zeros(len(alive), dtype=torch.bool)
            if free.any():
                fi = free.nonzero().squeeze(-1)
                f_alive, f_t, f_row = alive[fi], t[fi], srow[fi]
                identity = lp_rows.shape[0] == len(fi) and f_row.equal(torch.arange(len(fi)))
                lp = lp_rows if identity else lp_rows[f_row]
                f_tok = sample_tokens(lp, uniforms(row_keys[f_alive], f_t), decoding.top_p)
                tok[fi] = f_tok
                toks[f_alive, f_t] = f_tok
                if token_stats:
                    lps[f_alive, f_t] = lp.gather(-1, f_tok[:, None]).squeeze(-1)
                    ents[f_alive, f_t] = token_entropy(lp_rows)[f_row]
                    certs[f_alive, f_t] = self_certainty(lp_rows)[f_row]
                stop = torch.isin(f_tok, stop_ids)
                ended = torch.zeros_like(stop)  # its answer settled, or it wrote a stop string
                if watching:
                    for j, (r, x) in enumerate(zip(f_alive.tolist(), f_tok.tolist())):
                        if row_watch[r] is not None and not stop[j]:
                            why = row_watch[r].push(x)
                            if why is not None:
                                ended[j], reason[r], cut[r] = True, why, row_watch[r].cut
                full = ~stop & ~ended & (limit[f_alive] <= f_t + 1)
                length[f_alive[stop]] = f_t[stop]
                length[f_alive[full | ended]] = f_t[full | ended] + 1
                for r in f_alive[stop].tolist():
                    reason[r] = "stop"
                done[fi] = stop | full | ended
            if done.all():
                break
            keep = (~done).nonzero().squeeze(-1)
            alive, tok, srow, depth = alive[keep], tok[keep], srow[keep], depth[keep] + 1
            if self.share_rows:  # the next model rows: one per distinct (row, token) among the samples
                combo, srow = torch.unique(srow * lp_rows.shape[-1] + tok, return_inverse=True)
                parent, step_tok = combo // lp_rows.shape[-1], combo % lp_rows.shape[-1]
            else:
                parent, step_tok, srow = srow, tok, torch.arange(len(alive))
            if not (len(parent) == lp_rows.shape[0] and parent.equal(torch.arange(len(parent)))):
                self._reorder(cache, parent, dev)
                att, next_pos = att[parent.to(dev)], next_pos[parent.to(dev)]
            att = torch.cat([att, torch.ones((att.shape[0], 1), dtype=att.dtype, device=dev)], dim=1)
            out = self.model(input_ids=step_tok[:, None].to(dev), attention_mask=att, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            next_pos = next_pos + 1
        gens = []
        for r in range(n_rows):
            n = int(length[r]) - cut[r]  # a stop string's tokens are not part of the response
            gens.append(Generation(token_ids=toks[r, :n].tolist(), finish_reason=reason[r], cut=cut[r],
                                   logprobs=lps[r, :n].tolist() if token_stats else None,
                                   entropies=ents[r, :n].tolist() if token_stats else None,
                                   self_certainty=certs[r, :n].tolist() if token_stats else None))
        return gens

    @staticmethod
    def _reorder(cache, index: torch.Tensor, dev) -> None:
        """Keep (and repeat) the cache rows ``index``, in that order."""
        cache.reorder_cache(index.to(dev))
