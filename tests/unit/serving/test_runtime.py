"""The core in-process: dynamic batching, observers, CPU sizing and error mapping."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import numpy as np
import pytest
from tests.unit.serving.graphs import identity, save
from prometheus_client import CollectorRegistry

from modelship_serving.protocol import InferInput, InferRequest, InvalidArgument, NotFound
from modelship_serving.runtime.cpu import cpu_limit, thread_count
from modelship_serving.server.core import ModelServer


def request(model: str, rows: int = 1, width: int = 4, value: float = 1.0) -> InferRequest:
    data = np.full((rows, width), value, np.float32)
    return InferRequest(model, "", "", [InferInput("INPUT0", "FP32", data.shape, data)])


async def started(repo, **kwargs) -> ModelServer:
    server = ModelServer(repo, cpu_limit=1, registry=CollectorRegistry(), **kwargs)
    await server.start()
    return server


async def test_concurrent_requests_are_batched_up_to_the_preferred_size(repo):
    save(repo, "m", identity(), config="""
        max_batch_size: 16
        dynamic_batching { preferred_batch_size: [4] max_queue_delay_microseconds: 2000000 }""")
    server = await started(repo)
    responses = await asyncio.gather(*(server.infer(request("m", value=i), protocol="test")
                                       for i in range(8)))
    for i, response in enumerate(responses):
        assert response.outputs[0].data.tolist() == [[float(i)] * 4]
    stats = server.model_statistics("m").model_stats[0]
    assert [(b.batch_size, b.compute_infer.count) for b in stats.batch_stats] == [(4, 2)]
    assert stats.inference_count == 8 and stats.execution_count == 2
    await server.close()


async def test_requests_with_different_shapes_never_share_a_batch(repo):
    save(repo, "m", identity(dims=[None, None]), config="""
        max_batch_size: 8
        dynamic_batching { max_queue_delay_microseconds: 200000 preferred_batch_size: [2] }""")
    server = await started(repo)
    results = await asyncio.gather(
        server.infer(request("m", width=3), protocol="test"),
        server.infer(request("m", width=5), protocol="test"),
        server.infer(request("m", width=3), protocol="test"),
        server.infer(request("m", width=5), protocol="test"))
    assert [r.outputs[0].data.shape for r in results] == [(1, 3), (1, 5), (1, 3), (1, 5)]
    stats = server.model_statistics("m").model_stats[0]
    assert stats.execution_count == 2
    await server.close()


async def test_observers_see_every_batch_in_a_worker_thread_after_the_response(repo):
    save(repo, "m", identity())
    seen: list[tuple[str, str, list[int], str]] = []
    done = threading.Event()

    class Recorder:
        def observe(self, model, version, inputs, outputs):
            seen.append((model, version, list(inputs["INPUT0"].shape),
                         threading.current_thread().name))
            done.set()

    server = await started(repo)
    server.add_observer(Recorder())
    await server.infer(request("m", rows=3), protocol="test")
    assert await asyncio.to_thread(done.wait, 10)
    assert seen[0][:3] == ("m", "1", [3, 4])
    assert seen[0][3] != threading.main_thread().name
    await server.close()


async def test_a_failing_observer_does_not_fail_the_request(repo, caplog):
    save(repo, "m", identity())
    after = threading.Event()

    class Broken:
        def observe(self, *args):
            raise RuntimeError("observer bug")

    class Next:
        def observe(self, *args):
            after.set()

    server = await started(repo, observers=[Broken(), Next()])
    response = await server.infer(request("m"), protocol="test")
    assert response.outputs[0].data.shape == (1, 4)
    assert await asyncio.to_thread(after.wait, 10)  # the next observer still ran
    assert "observer bug" in caplog.text
    await server.close()


async def test_errors_name_the_tensor_and_what_is_wrong(repo):
    save(repo, "m", identity())
    server = await started(repo)
    with pytest.raises(NotFound, match="model 'nope' is not in the repository"):
        await server.infer(request("nope"), protocol="test")
    with pytest.raises(InvalidArgument, match=r"shape \[1, 5\] does not match the model's "
                                              r"\[-1, 4\] \(dimension 1 must be 4\)"):
        await server.infer(request("m", width=5), protocol="test")
    bad = request("m")
    bad.inputs[0].datatype = "FP64"
    with pytest.raises(InvalidArgument, match="datatype FP64 does not match the model's FP32"):
        await server.infer(bad, protocol="test")
    bad = request("m")
    bad.inputs[0].name = "other"
    with pytest.raises(InvalidArgument, match=r"unexpected input 'other'.*\['INPUT0'\]"):
        await server.infer(bad, protocol="test")
    with pytest.raises(InvalidArgument, match=r"batch size 5 is outside \[1, 4\]"):
        await server.infer(request("m", rows=5), protocol="test")
    assert server.model_statistics("m").model_stats[0].inference_stats.fail.count == 4
    await server.close()


async def test_payload_logging_is_sampled_truncated_and_scrubbed(repo, caplog):
    save(repo, "m", identity(dims=[None, 40]))
    server = await started(repo, payload_log_sample_rate=1.0)
    caplog.set_level(logging.INFO, logger="modelship_serving.monitoring.payload")
    sent = request("m", width=40)
    sent.parameters = {"token": "s3cr3t-value"}
    await server.infer(sent, protocol="test")
    record = [r for r in caplog.records if hasattr(r, "payload")][0]
    assert record.payload["inputs"]["INPUT0"]["truncated"] is True
    assert len(record.payload["inputs"]["INPUT0"]["data"]) == 16
    assert "s3cr3t-value" not in str(record.payload)
    await server.close()


def test_cpu_limit_comes_from_the_env_then_the_cgroup_quota(tmp_path):
    assert cpu_limit({"MODELSHIP_CPU_LIMIT": "500m"}, tmp_path) == 0.5
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_limit({}, tmp_path) == min(1.5, cpu_limit({}, tmp_path / "none"))
    assert thread_count(2) == 1  # one core stays with the event loop
    assert thread_count(8) == 7
    assert thread_count(4, instances=2) == 2
    assert thread_count(0.5) == 1


def test_a_cpu_limit_above_the_cores_we_may_use_is_capped_at_them(tmp_path):
    # With no limit set, the downward API hands the node's allocatable CPU
    # (64 on the development node) to a process that may run on fewer cores.
    cores = float(len(os.sched_getaffinity(0)))
    assert cpu_limit({"MODELSHIP_CPU_LIMIT": "64"}, tmp_path) == min(64.0, cores)


@pytest.mark.parametrize("version", ["0_2", "+2", " 2", "２"])
async def test_a_version_in_the_path_must_be_digits_only(tmp_path, version):
    save(tmp_path, "m", identity(), version=2)
    server = ModelServer(tmp_path, registry=CollectorRegistry())
    await server.start()

    with pytest.raises(InvalidArgument, match="is not a version number"):
        server.manager.get("m", version)
    await server.close()


@pytest.mark.parametrize("config, reason", [
    ('input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [5] }]',
     "input 'INPUT0' has shape [-1, 5] in config.pbtxt (-1: any size) but [-1, 4] in "
     "model.onnx: no request could fit both"),
    ('input [{ name: "INPUT0" data_type: TYPE_INT32 dims: [4] }]',
     "input 'INPUT0' is TYPE_INT32 in config.pbtxt but TYPE_FP32 in model.onnx"),
    ('output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [2, 2] }]',
     "output 'OUTPUT0' has shape [-1, 2, 2] in config.pbtxt"),
    ('input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [2] reshape { shape: [4] } }]', ""),
    ("max_batch_size: -1", "max_batch_size must be 0 (no batching) or more"),
    ('parameters { key: "intra_op_thread_count" value: { string_value: "99999999999999999999" } }',
     "intra_op_thread_count must be a whole number of threads from 0"),
    ('parameters { key: "intra_op_thread_count" value: { string_value: "100000" } }',
     "intra_op_thread_count must be a whole number of threads from 0"),
    ('parameters { key: "inter_op_thread_count" value: { string_value: "two" } }',
     "inter_op_thread_count must be a whole number of threads"),
    ('parameters { key: "allow_spinning" value: { string_value: "yes" } }',
     'allow_spinning must be "0" or "1"'),
    ("instance_group [{ count: 100000 kind: KIND_CPU }]",
     "instance_group counts must be from 0 to 64 instances in all"),
    ("instance_group [{ count: -3 kind: KIND_CPU }]", "instance_group counts must be"),
    ("dynamic_batching { max_queue_delay_microseconds: 18446744073709551615 }",
     "max_queue_delay_microseconds must be at most 10000000"),
    ('input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [-2] }]',
     "dimensions are sizes, or -1 for any size"),
    ('default_model_filename: "../good/1/model.onnx"',
     "default_model_filename must name a file in the version directory"),
])
async def test_a_config_no_request_could_use_leaves_the_model_unavailable_with_why(
        repo, config, reason):
    save(repo, "bad", identity(), config="max_batch_size: 8\n" + config
         if "max_batch_size" not in config else config)
    save(repo, "good", identity())
    server = await started(repo, strict_readiness=False)

    assert server.model_ready("bad") is not bool(reason)
    assert reason in server.model_unready_reason("bad")
    assert (await server.infer(request("good"), protocol="test")).outputs
    await server.close()


async def test_only_canonical_version_directories_are_versions(repo):
    save(repo, "m", identity(), version=1)
    for odd in ("01", "\u00b2", "\u0661", "9" * 30):
        save(repo, "m", identity(), version=odd)  # type: ignore[arg-type]
    server = await started(repo)

    assert server.manager.entries()[0].versions.keys() == {1}
    await server.close()


@pytest.mark.parametrize("direct", [True, False])
async def test_an_output_json_cannot_carry_is_counted_as_a_failed_request(repo, direct):
    save(repo, "m", identity(dims=[2, None]))  # no batching: it runs on the loop
    server = await started(repo)
    assert server.manager.get("m").direct is not None
    rows = np.array([[1.0, np.nan], [0.0, 2.0]], np.float32)
    with pytest.raises(InvalidArgument, match="ask for it with binary_data=true"):
        if direct:
            server.infer_direct("m", "", "", [("INPUT0", "FP32", [2, 2], rows.tobytes())],
                                None, binary_default=False, protocol="test")
        else:
            await server.infer(InferRequest("m", "", "", [
                InferInput("INPUT0", "FP32", rows.shape, rows)]), protocol="test")

    stats = server.manager.get("m").stats.snapshot()
    assert (stats.success.count, stats.fail.count) == (0, 1)
    await server.close()


async def test_a_config_that_is_not_utf8_fails_its_model_only(repo):
    save(repo, "bad", identity())
    (repo / "bad" / "config.pbtxt").write_bytes(b'# caf\xe9\nmax_batch_size: 4\n')
    save(repo, "good", identity())
    server = await started(repo, strict_readiness=False)

    assert "not UTF-8 text" in server.model_unready_reason("bad")
    assert (await server.infer(request("good"), protocol="test")).outputs
    await server.close()


async def test_an_unexpected_error_while_loading_fails_the_model_not_the_server(
        repo, monkeypatch):
    from modelship_serving.runtime import manager as manager_module

    save(repo, "m", identity())
    server = ModelServer(repo, cpu_limit=1, registry=CollectorRegistry(),
                         control_mode="explicit")
    await server.start()

    def boom(*args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(manager_module, "WorkerThreads", boom, raising=False)
    monkeypatch.setattr(manager_module.ModelManager, "_open_version", boom)
    with pytest.raises(InvalidArgument, match="RuntimeError: can't start new thread"):
        await server.load_model("m")
    entry = server.manager.entries()[0]
    assert (entry.state, entry.reason) == ("UNAVAILABLE", "RuntimeError: can't start new thread")
    await server.close()
