"""Resumable parts (siaflow.generation.resume) without a model: a part that cannot be read is redone with a
log line, and parts made with another backend or backend setting are not reused."""

import polars as pl

from siaflow.generation.backends.base import BackendInfo
from siaflow.generation.resume import parts_dir, run_in_parts


def _work(calls):
    def work(chunk):
        calls.append(list(chunk))
        return pl.DataFrame({"x": list(chunk)}), {"n": len(chunk)}

    return work


def test_a_part_cut_short_is_redone_with_a_log_line(tmp_path):
    out, calls, logs = tmp_path / "out.parquet", [], []
    first, _ = run_in_parts(list(range(6)), _work(calls), output=out, chunk=2, identity={"a": 1})
    part = parts_dir(out) / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:40])  # a node crashed while the file system flushed it
    calls.clear()
    again, counts = run_in_parts(list(range(6)), _work(calls), output=out, chunk=2, identity={"a": 1}, log=logs.append)
    assert calls == [[2, 3]]  # only the unreadable part is computed again
    assert again.equals(first) and counts == {"n": 6}
    assert any("part 2/3" in m and "cannot be read" in m and "redoing it" in m for m in logs), logs


def test_parts_of_another_backend_or_setting_are_discarded(tmp_path):
    out, calls, logs = tmp_path / "out.parquet", [], []
    hf = BackendInfo("transformers", "m", "sha256:1", "exact", settings={"dtype": "torch.float32"})
    vllm = BackendInfo("vllm", "m", "sha256:1", "topk_approx", settings={"dtype": "torch.float32", "logprobs": 20})
    run_in_parts([1, 2], _work(calls), output=out, chunk=1, identity=hf.identity())
    calls.clear()
    run_in_parts([1, 2], _work(calls), output=out, chunk=1, identity=vllm.identity(), log=logs.append)
    assert calls == [[1], [2]] and any("different work" in m for m in logs)
    calls.clear()
    k40 = BackendInfo("vllm", "m", "sha256:1", "topk_approx", settings={"dtype": "torch.float32", "logprobs": 40})
    run_in_parts([1, 2], _work(calls), output=out, chunk=1, identity=k40.identity())
    assert calls == [[1], [2]]
    assert hf.identity()["backend"] == "transformers" and vllm.identity()["logprobs"] == 20
