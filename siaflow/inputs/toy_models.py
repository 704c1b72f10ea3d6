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

from siaflow.inputs.toy import PROMPT_TEMPLATE, informative_response, make_problem, noninformative_response

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
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


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
    prompts, responses = [], []
    for _ in range(cfg.batch_size):
        p = make_problem(rng, n_steps=cfg.n_steps_problem)
        if cfg.regime == "informative":
            response = informative_response(p)
        else:
            response = noninformative_response(p, make_problem(rng, n_steps=cfg.n_steps_problem))
        prompts.append(tokenizer(PROMPT_TEMPLATE.format(question=p.question)).input_ids)
        responses.append(tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id])
    return pack(prompts, responses, tokenizer)


def pack(prompts: list[list[int]], responses: list[list[int]], tokenizer):
    """Right-padded ids, attention mask and labels of prompt + response pairs; the loss is on the
    response tokens only (prompt and padding positions labelled -100)."""
    seqs = [p + r for p, r in zip(prompts, responses)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        lab[i, len(p) : len(p) + len(r)] = torch.tensor(r)
        att[i, : len(p) + len(r)] = 1
    return ids, att, lab


def toy_gpt2_config(cfg: ToyTrainConfig, tokenizer) -> GPT2Config:
    """The toy model's GPT-2 architecture, without dropout (training is deterministic on CPU)."""
    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )


def cosine_lr(cfg: ToyTrainConfig, step: int) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then cosine decay to 0 at ``cfg.steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train_toy_model(cfg: ToyTrainConfig, out_dir: str | Path, log=print, on_step=None) -> dict:
    """Train a GPT-2-format model on the toy task and ``save_pretrained`` it with its tokenizer.

    Deterministic for a given config on CPU. Returns a summary (final loss, seconds).
    ``on_step(step, model, tokenizer)`` is called with the initialised model (step 0) and after
    every optimiser step (snapshots, probes); it must not draw random numbers.
    """
    if cfg.regime not in REGIMES:
        raise ValueError(f"toy regime must be one of {REGIMES}, got {cfg.regime!r}")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(f"toy-train-{cfg.regime}-{cfg.seed}")
    tokenizer = build_tokenizer()
    model = GPT2LMHeadModel(toy_gpt2_config(cfg, tokenizer))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))

    model.train()
    t0, ema = time.time(), None
    if on_step is not None:
        on_step(0, model, tokenizer)
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(cfg, step)
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
    summary = {
        "final_loss_ema": ema,
        "seconds": round(time.time() - t0, 1),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_config": asdict(cfg),
        "prompt_template": PROMPT_TEMPLATE,
    }
    (out / "siaflow_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# --------------------------------------------------------------------------------------------
# Checkpoints through training (fig_training_dynamics)
# --------------------------------------------------------------------------------------------


def checkpoint_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step-{step:05d}"


def _check_steps(steps, total: int) -> None:
    bad = sorted(s for s in steps if not 0 <= s <= total)
    if bad:
        raise ValueError(f"checkpoint steps {bad} are outside this run's 0..{total} steps")


def snapshots(root: str | Path, steps, info: dict):
    """An ``on_step`` callback saving the model (with its tokenizer and ``info`` plus the step) into
    ``root/step-NNNNN`` at each of ``steps``. Saving draws no random numbers, so a run with
    snapshots trains exactly as one without."""
    wanted = set(steps)

    def on_step(step, model, tokenizer):
        if step in wanted:
            out = checkpoint_dir(root, step)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
            (out / "siaflow_checkpoint.json").write_text(json.dumps({**info, "step": step}, indent=2) + "\n")

    return on_step


def train_toy_checkpoints(cfg: ToyTrainConfig, root: str | Path, steps, log=print) -> dict:
    """One training run of ``cfg`` saved at each of ``steps`` (0 = the initialisation) into
    ``root/step-NNNNN``; its last step is exactly the model ``train_toy_model(cfg)`` saves."""
    _check_steps(steps, cfg.steps)
    info = {"regime": cfg.regime, "train_config": asdict(cfg)}
    return train_toy_model(
        cfg, checkpoint_dir(root, cfg.steps), log=log, on_step=snapshots(root, set(steps) - {cfg.steps}, info)
    )


# --------------------------------------------------------------------------------------------
# sft+rl: rejection-sampling fine-tuning on the model's own correct traces
# --------------------------------------------------------------------------------------------


@dataclass
class ToyRLConfig:
    """Online rejection sampling: every step samples one response to each of ``batch_size`` fresh
    problems, keeps those whose answer is right (a verifiable 0/1 reward) and takes one
    maximum-likelihood step on them: the policy gradient of the 0/1 reward without a baseline."""

    seed: int = 0
    steps: int = 500
    batch_size: int = 64
    lr: float = 1e-4
    temperature: float = 1.0
    max_new_tokens: int = 64
    n_steps_problem: int = 3
    threads: int = 2


def sample_responses(model, tokenizer, prompts: list[list[int]], cfg: ToyRLConfig) -> list[list[int]]:
    """One sampled response per prompt (token ids, up to and including EOS), from the model's own
    distribution at ``cfg.temperature``, with torch's seeded generator."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    att = torch.zeros_like(ids)
    for i, p in enumerate(prompts):  # left padding: every prompt ends where generation starts
        ids[i, width - len(p) :] = torch.tensor(p)
        att[i, width - len(p) :] = 1
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=att,
            do_sample=True,
            temperature=cfg.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=cfg.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    responses = []
    for row in out[:, width:].tolist():
        end = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        responses.append(row[:end])
    return responses


def rejection_sampling_finetune(init_dir: str | Path, cfg: ToyRLConfig, root: str | Path, steps, log=print) -> dict:
    """Fine-tune the model in ``init_dir`` on its own correct traces (``ToyRLConfig``), saving it at
    each of ``steps`` (0 = the starting model) into ``root/step-NNNNN``; deterministic for a
    given config on CPU. Returns a summary with the reward (fraction correct) of every step."""
    from siaflow.answers import extract_answer

    _check_steps(steps, cfg.steps)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(f"toy-rl-{cfg.seed}")
    model = GPT2LMHeadModel.from_pretrained(init_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(init_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.98))
    on_step = snapshots(root, steps, {"regime": "informative+rl", "init": str(init_dir), "rl_config": asdict(cfg)})
    on_step(0, model, tokenizer)
    t0, rewards = time.time(), []
    for step in range(cfg.steps):
        problems = [make_problem(rng, n_steps=cfg.n_steps_problem) for _ in range(cfg.batch_size)]
        prompts = [tokenizer(PROMPT_TEMPLATE.format(question=p.question)).input_ids for p in problems]
        responses = sample_responses(model, tokenizer, prompts, cfg)
        correct = [
            extract_answer(tokenizer.decode(r, skip_special_tokens=True), "numeric", last_number_fallback=False)
            == str(p.answer)
            for p, r in zip(problems, responses)
        ]
        rewards.append(sum(correct) / len(correct))
        kept = [i for i, ok in enumerate(correct) if ok]
        if kept:  # a step with no correct sample leaves the model as it is
            model.train()
            ids, att, lab = pack([prompts[i] for i in kept], [responses[i] for i in kept], tokenizer)
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        on_step(step + 1, model, tokenizer)
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"[rl] step {step + 1}/{cfg.steps} reward {rewards[-1]:.3f} ({time.time() - t0:.0f}s)")
    summary = {
        "seconds": round(time.time() - t0, 1),
        "reward": rewards,
        "rl_config": asdict(cfg),
        "init": str(init_dir),
    }
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / "siaflow_rl.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
