"""The Hugging Face hub as the model loaders see it: what a hub id looks like, whether the hub is switched
off or reachable. Shared by the local-model backend and the rankers, so both refuse the same things alike."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "name" or "owner/name"


def cached_file(hub_id: str, name: str) -> Path | None:
    """The file ``name`` of the hub model ``hub_id`` in the local Hugging Face cache (no network), else None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(hub_id, name)
    except Exception:  # noqa: BLE001 - no huggingface_hub, an odd id or cache layout: as if not cached
        return None
    return Path(cached) if isinstance(cached, str) else None


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or transformers' older ``TRANSFORMERS_OFFLINE``) is set: only cached models load."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def reachable(timeout_s: float = 3.0) -> bool:
    """A TCP connection to the hub (``HF_ENDPOINT``), or to the HTTPS proxy that would carry it, opens."""
    import urllib.request
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    address = (endpoint.hostname or "", endpoint.port or (80 if endpoint.scheme == "http" else 443))
    proxy = urllib.request.getproxies().get(endpoint.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(address[0]):
        parsed = urlparse(proxy if "://" in proxy else "http://" + proxy)
        address = (parsed.hostname or "", parsed.port or 80)
    try:
        with socket.create_connection(address, timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
