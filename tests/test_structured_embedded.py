"""The embedded default (SmolLM2-135M in llama.cpp): JSON-schema output is
enforced by a grammar; tools are refused with FAILED_PRECONDITION that says
which backend cannot and what to run instead."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import openai
import pytest
from google.rpc import error_details_pb2

from tandem.conversions import dict_to_struct
from tandem.openai_compat.server import running_openai_endpoint
from tandem.v1 import common_pb2, worker_pb2
from tandem_gateway.server import running_gateway
from tandem_worker.server import RunningWorker, running_worker
from tests.conftest import gateway_settings, worker_settings
from tests.helpers import (
    GATEWAY_SERVICE,
    GUARD_S,
    WORKER_SERVICE,
    rich_details,
    user,
    wait_for_health,
    worker_stub,
)
from tests.test_openai_endpoint import endpoint_settings

pytestmark = pytest.mark.embedded

SCHEMA = {
    "type": "object",
    "properties": {"language": {"enum": ["python", "rust", "go"]}, "stars": {"type": "integer"}},
    "required": ["language", "stars"],
}
WEATHER = common_pb2.ToolDefinition(
    name="get_weather",
    parameters=dict_to_struct({"type": "object", "properties": {"city": {"type": "string"}}}),
)


@pytest.fixture(scope="module")
async def worker() -> AsyncIterator[RunningWorker]:
    async with running_worker(worker_settings(None)) as running:
        await wait_for_health(running.address, WORKER_SERVICE)
        yield running


async def generate(address: str, request: worker_pb2.GenerateRequest) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        pieces = [
            r.delta.text
            async for r in worker_stub(channel).Generate(request, timeout=GUARD_S * 5)
            if r.HasField("delta")
        ]
    return "".join(pieces)


async def test_a_json_schema_answer_from_the_embedded_model_matches_it(
    worker: RunningWorker,
) -> None:
    request = worker_pb2.GenerateRequest(
        messages=[user("Which language is best for scripting, and how many stars does it get?")],
        options=common_pb2.GenerationOptions(max_tokens=64, temperature=0.0, seed=1),
        response_format=common_pb2.ResponseFormat(
            type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, schema=dict_to_struct(SCHEMA)
        ),
    )
    answer = json.loads(await generate(worker.address, request))
    assert set(answer) == {"language", "stars"}
    assert answer["language"] in SCHEMA["properties"]["language"]["enum"]
    assert isinstance(answer["stars"], int)


async def test_tools_on_the_embedded_model_are_a_failed_precondition(
    worker: RunningWorker,
) -> None:
    request = worker_pb2.GenerateRequest(messages=[user("Weather in Paris?")], tools=[WEATHER])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await generate(worker.address, request)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "tandem worker --ollama-url" in (caught.value.details() or "")
    details = rich_details(caught.value)
    [failure] = [d for d in details if isinstance(d, error_details_pb2.PreconditionFailure)]
    assert failure.violations[0].type == "TOOLS_UNSUPPORTED"
    assert failure.violations[0].subject == "embedded"

    # Tool choice "none" asks for no call: the model answers in text.
    request.tool_choice.mode = common_pb2.TOOL_CHOICE_MODE_NONE
    request.options.max_tokens = 8
    assert await generate(worker.address, request)


async def test_the_openai_endpoint_says_tools_need_another_backend(worker: RunningWorker) -> None:
    """Through gateway and endpoint: the embedded worker's refusal is a 400 naming `tools`."""
    async with (
        running_gateway(gateway_settings(None, [worker.address], judge_timeout_s=120)) as gateway,
        running_openai_endpoint(endpoint_settings(gateway.address)) as endpoint,
        openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key="unused", max_retries=0, timeout=GUARD_S * 5
        ) as client,
    ):
        await wait_for_health(gateway.address, GATEWAY_SERVICE)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="tandem",
                messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                tools=[{"type": "function", "function": {"name": "get_weather"}}],
            )
    assert caught.value.code == "tools_unsupported" and caught.value.param == "tools"
    assert "qwen3-coder-next" in caught.value.message  # what to run instead
