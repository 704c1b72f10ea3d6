import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised GPT-2 with the toy character tokenizer, saved in HF format."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from siaflow.toy import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = GPT2Config(vocab_size=len(tok), n_positions=96, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():  # make EOS likely enough that some rows stop early
        model.lm_head.weight[tok.eos_token_id] *= 0
        model.transformer.wte.weight[tok.eos_token_id] += 0.0
    out = tmp_path_factory.mktemp("tiny_gpt2")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)
