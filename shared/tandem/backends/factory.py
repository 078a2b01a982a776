"""Choose the backend a role's settings ask for."""

from __future__ import annotations

from tandem.backends.base import ChatBackend
from tandem.backends.embedded import EmbeddedBackend
from tandem.backends.ollama import OllamaBackend
from tandem.settings import BackendSettings, resolved_model


def build_backend(settings: BackendSettings, production_model: str) -> ChatBackend:
    model = resolved_model(settings, production_model)
    if settings.ollama_url:
        return OllamaBackend(
            settings.ollama_url,
            model,
            keep_alive=settings.keep_alive,
            num_ctx=settings.num_ctx,
            connect_timeout_s=settings.connect_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
        )
    return EmbeddedBackend(
        model,
        settings.gguf_path,
        n_ctx=settings.num_ctx,
        n_threads=settings.embedded_threads,
    )
