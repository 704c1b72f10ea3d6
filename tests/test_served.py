"""A served model (`backend: openai`) against a real vLLM server on localhost: its samples,
log-probabilities and finish reasons equal the in-process vLLM engine's for the same keys; a server
that serves another model, lacks the API key or gives raw log-probabilities is refused before
anything is sampled; a server killed mid-shard and restarted gives a resumed shard equal to an
uninterrupted one. The servers are started and stopped by these tests (vllm_support.Server)."""

import threading
import time

import polars as pl
import pytest
from vllm_support import Server, require_vllm, smollm2_dir, smollm2_engine, smollm2_rollouts

from siaflow.answers import ResponseRules
from siaflow.generation.backends import Decoding, make_backend
from siaflow.generation.backends.served import ServerError
from siaflow.generation.rollouts import run_continuations
from siaflow.generation.settings import DrawSettings

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
KEY_ENV = "SIAFLOW_TEST_SERVER_KEY"
DECODINGS = {"T0.7-p0.95": Decoding(0.7, 0.95, 64), "T1-p1": Decoding(1.0, 1.0, 48)}
STATS = ("token_logprobs", "token_entropy")  # the rest are null on vLLM's processed log-probabilities


@pytest.fixture(scope="module")
def in_process():
    """The same rollouts on the in-process engine (started, used and shut down first)."""
    require_vllm()
    engine = smollm2_engine()
    try:
        out = {name: smollm2_rollouts(engine, d, n_q=3, n=2) for name, d in DECODINGS.items()}
        out["fewshot"] = smollm2_rollouts(engine, DECODINGS["T0.7-p0.95"], template="fewshot_math", n_q=3, n=2)
    finally:
        engine.close()
    return out


@pytest.fixture(scope="module")
def served(smollm2_server, monkeypatch_module):
    monkeypatch_module.setenv(KEY_ENV, smollm2_server.api_key)
    return make_backend(
        "openai", smollm2_dir(), base_url=smollm2_server.url, served_model="smollm2", api_key_env=KEY_ENV, retries=1
    )


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.parametrize("name", [*DECODINGS, "fewshot"])
def test_served_samples_equal_the_in_process_engines(in_process, served, name):
    template = "fewshot_math" if name == "fewshot" else "chat_math"
    decoding = DECODINGS.get(name, DECODINGS["T0.7-p0.95"])
    mine, _ = smollm2_rollouts(served, decoding, template=template, n_q=3, n=2)
    theirs = in_process[name][0]
    assert mine["token_ids"].to_list() == theirs["token_ids"].to_list()
    assert mine["finish_reason"].to_list() == theirs["finish_reason"].to_list()
    assert mine["cut"].to_list() == theirs["cut"].to_list() and mine["answer"].to_list() == theirs["answer"].to_list()
    for col in STATS:  # processed log-probabilities on both sides, float32: equal to rounding
        diffs = [abs(a - b) for x, y in zip(mine[col], theirs[col]) for a, b in zip(x, y)]
        assert diffs and max(diffs) < 2e-4, (col, max(diffs))
    assert len(set(mine["finish_reason"])) > 1 or name == "fewshot"


def test_what_the_served_backend_records(served, smollm2_server):
    info = served.info
    assert info.name == "openai" and info.entropy_kind == "topk_approx"
    assert info.settings["vllm"] == "0.32.0" and info.settings["logprobs_mode"] == "processed_logprobs"
    assert info.settings["served_model"] == "smollm2" and info.settings["max_model_len"] == served.max_context > 0
    assert "base_url" not in info.identity()  # another node serving the same model resumes the same parts
    assert smollm2_server.api_key not in repr(vars(info))
    before = dict(served.stats)
    smollm2_rollouts(served, DECODINGS["T1-p1"], n_q=2, n=2)
    assert served.stats["decoded_tokens"] > before["decoded_tokens"]
    assert served.stats["prefill_tokens"] > before["prefill_tokens"]


def test_a_server_that_serves_another_model_or_wants_a_key_is_refused(smollm2_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, smollm2_server.api_key)
    with pytest.raises(ServerError, match=r"serves \['smollm2'\], not 'llama'") as err:
        make_backend("openai", smollm2_dir(), base_url=smollm2_server.url, served_model="llama", api_key_env=KEY_ENV)
    assert smollm2_server.api_key not in str(err.value)
    with pytest.raises(ServerError, match="HTTP 401"):
        make_backend("openai", smollm2_dir(), base_url=smollm2_server.url, served_model="smollm2")
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ServerError, match=f"{KEY_ENV} .server.api_key_env. is not set"):
        make_backend("openai", smollm2_dir(), base_url=smollm2_server.url, api_key_env=KEY_ENV)


def test_a_server_that_is_not_there_is_named(tmp_path):
    with pytest.raises(ServerError, match=r"http://127.0.0.1:9/v1/models failed 2 times; last: ConnectionError"):
        make_backend("openai", smollm2_dir(), base_url="http://127.0.0.1:9", retries=1)


def test_a_raw_logprobs_server_is_refused(tmp_path):
    require_vllm()
    raw = Server(tmp_path, logprobs_mode="raw_logprobs").start()
    try:
        with pytest.raises(
            ServerError, match="raw .temperature-1. log-probabilities.*--logprobs-mode processed_logprobs"
        ):
            make_backend("openai", smollm2_dir(), base_url=raw.url, served_model="smollm2")
    finally:
        raw.stop()
    assert raw.proc.poll() is not None


def test_a_server_killed_mid_shard_and_restarted_resumes_to_an_uninterrupted_shard(
    in_process, served, smollm2_server, tmp_path
):
    """Runs last in this module: it kills the shared server and starts it again."""
    roll = in_process["T0.7-p0.95"][0].filter(
        pl.col("question_id").is_in(in_process["T0.7-p0.95"][0]["question_id"].unique().sort()[:2].to_list())
    )
    draw = DrawSettings(Decoding(0.7, 0.95, 64), seed=0, n_samples=3, stride=8)
    kw = dict(draw=draw, rules=ResponseRules(in_process["T0.7-p0.95"][1].extract), part_prefixes=2)
    whole, _ = run_continuations(served, roll, output=tmp_path / "whole.parquet", **kw)
    parts = tmp_path / "resumed.parquet.parts"
    failure = {}

    def shard():
        try:
            run_continuations(served, roll, output=tmp_path / "resumed.parquet", **kw)
        except ServerError as err:
            failure["err"] = err

    job = threading.Thread(target=shard)
    job.start()
    t0 = time.time()
    while not list(parts.glob("part-*.parquet")) and time.time() - t0 < 600:
        time.sleep(0.1)
    smollm2_server.kill()
    job.join(timeout=600)
    assert "err" in failure and "failed 2 times" in str(failure["err"]), failure
    saved = len(list(parts.glob("part-*.parquet")))
    total = -(-whole.select("question_id", "trajectory", "k").unique().height // 2)
    assert 1 <= saved < total
    smollm2_server.start()
    resumed, _ = run_continuations(served, roll, output=tmp_path / "resumed.parquet", **kw)
    assert resumed.equals(whole)
