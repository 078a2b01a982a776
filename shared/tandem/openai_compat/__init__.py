"""An OpenAI-compatible HTTP endpoint in front of the gateway (``tandem openai``).

``POST /v1/chat/completions`` (whole or streamed as server-sent events) and
``GET /v1/models``; each completion is one ``GatewayService/Route``. Starlette
and uvicorn come with ``pip install 'tandem-router[openai-server]'``.
"""
