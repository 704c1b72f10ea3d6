"""The toy world's tiny GPT-2 models: a character tokenizer and a training loop, in an
answer-informative and a non-informative regime (docs/design.md §3).

Read top to bottom: tokenizer -> training examples -> model -> training loop. Everything is seeded;
``train_toy_model(ToyTrainConfig(regime, seed=...), out_dir)`` reproduces a checkpoint.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from siaflow.toy import PROMPT_TEMPLATE, informative_response, make_problem, noninformative_response

# --------------------------------------------------------------------------------------------
# Tokenizer: one token per character, saved in Hugging Face format
# --------------------------------------------------------------------------------------------

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,?!:;+-=*/#$()'\n"


def build_tokenizer():
    """A character-level ``PreTrainedTokenizerFast`` (loadable with ``AutoTokenizer``)."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + list(ALPHABET))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>")


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

REGIMES = ("informative", "noninformative")


@dataclass
class ToyTrainConfig:
    regime: str
    seed: int = 0
    n_layer: int = 4
    n_embd: int = 64
    n_head: int = 4
    n_positions: int = 128
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    n_steps_problem: int = 3
    threads: int = 2
    extra: dict = field(default_factory=dict)


def training_batch(rng: random.Random, tokenizer, cfg: ToyTrainConfig):
    """Token ids and labels (prompt positions masked with -100) for one batch."""
    seqs, labels = [], []
    for _ in range(cfg.batch_size):
        p = make_problem(rng, n_steps=cfg.n_steps_problem)
        if cfg.regime == "informative":
            response = informative_response(p)
        else:
            response = noninformative_response(p, make_problem(rng, n_steps=cfg.n_steps_problem))
        prompt_ids = tokenizer(PROMPT_TEMPLATE.format(question=p.question)).input_ids
        resp_ids = tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        seqs.append(prompt_ids + resp_ids)
        labels.append([-100] * len(prompt_ids) + resp_ids)
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lb) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(lb)] = torch.tensor(lb)
        att[i, : len(s)] = 1
    return ids, att, lab


def train_toy_model(cfg: ToyTrainConfig, out_dir: str | Path, log=print, on_step=None) -> dict:
    """Train a GPT-2-format model on the toy task and ``save_pretrained`` it with its tokenizer.

    Deterministic for a given config on CPU. Returns a summary (final loss, seconds).
    ``on_step(step, model, tokenizer)`` is called after every optimiser step (snapshots, probes).
    """
    if cfg.regime not in REGIMES:
        raise ValueError(f"toy regime must be one of {REGIMES}, got {cfg.regime!r}")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(f"toy-train-{cfg.regime}-{cfg.seed}")
    tokenizer = build_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))

    def lr_at(step):
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))

    model.train()
    t0, ema = time.time(), None
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ids, att, lab = training_batch(rng, tokenizer, cfg)
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if on_step is not None:
            on_step(step + 1, model, tokenizer)
        if step % 250 == 0 or step == cfg.steps - 1:
            log(f"[train {cfg.regime}] step {step + 1}/{cfg.steps} loss {ema:.4f} ({time.time() - t0:.0f}s)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {"final_loss_ema": ema, "seconds": round(time.time() - t0, 1),
               "n_parameters": sum(p.numel() for p in model.parameters()), "train_config": asdict(cfg),
               "prompt_template": PROMPT_TEMPLATE}
    (out / "siaflow_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
