"""OpenAI calls through an OpenTelemetry instrumentation, exported over OTLP/HTTP.

Run by the collect tests with:
  INSTRUMENTATION   openai-v2 (opentelemetry-instrumentation-openai-v2) or
                    openllmetry (OpenLLMetry's opentelemetry-instrumentation-openai)
  OPENAI_BASE_URL   the mock OpenAI server
  OTLP_ENDPOINT     llm-usage collect's OTLP/HTTP address (http://host:port)

Each scenario is a span with a run id around its calls; one call is outside any run. Prompts
and replies are captured by the instrumentation (content capture on) and must not reach the
usage log.
"""

import os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "true")

provider = TracerProvider(resource=Resource.create({"service.name": "python-agent"}))
provider.add_span_processor(
    BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["OTLP_ENDPOINT"] + "/v1/traces"))
)
trace.set_tracer_provider(provider)

if os.environ["INSTRUMENTATION"] == "openai-v2":
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
else:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
OpenAIInstrumentor().instrument()

import openai  # noqa: E402  (instrumented above)

client = openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="test", max_retries=0)
tracer = trace.get_tracer("scenarios")
PROMPT = [{"role": "user", "content": "SECRET-PROMPT: what is the weather in Paris?"}]
TOOLS = [{
    "type": "function",
    "function": {
        "name": "forecast",
        "description": "The weather forecast for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}]


def run(run_id):
    return tracer.start_as_current_span("workflow", attributes={"run_id": run_id})


with run("plain"):
    client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)

with run("stream"):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass

with run("tools"):
    messages = list(PROMPT)
    while True:
        reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "SECRET-TOOL: 21C"})

with run("fail"):
    try:
        client.chat.completions.create(model="fail-model", messages=PROMPT)
    except openai.APIStatusError:
        pass

# Outside any run: the trace is the run.
client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)

provider.shutdown()
