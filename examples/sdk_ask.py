"""Stream an answer with the Tandem Python SDK. Start Tandem first (`make run`)."""
from tandem.sdk import Decision, Summary, TandemClient, Text

with TandemClient() as client:  # the gateway at $TANDEM_CLIENT_GATEWAY, or 127.0.0.1:50051
    for event in client.route("Write a Python function that reverses a string"):
        if isinstance(event, Decision):
            print(f"[{event.verdict} by {event.tier}, difficulty {event.difficulty}]")
        elif isinstance(event, Text):
            print(event.text, end="", flush=True)
        elif isinstance(event, Summary):
            print(f"\n[{event.finish_reason}: {event.message or event.model}]")
