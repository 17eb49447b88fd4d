"""Hugging Face Hub access without the network: model sources that read the
Hub's local cache (open_clip, transformers) run inside :func:`offline`, so
nothing is downloaded silently; ``--download`` lifts it."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextmanager
def offline(enabled: bool = True) -> Iterator[None]:
    """Hub offline mode inside the block (``huggingface_hub`` reads its
    constant, ``transformers`` the environment); restored afterwards."""
    if not enabled:
        yield
        return
    import huggingface_hub.constants as hub

    saved_env = {k: os.environ.get(k) for k in OFFLINE_VARS}
    saved = hub.HF_HUB_OFFLINE
    os.environ.update({k: "1" for k in OFFLINE_VARS})
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cached_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` of Hub repository ``repo_id`` found in the
    local Hub cache, or None (nothing is downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str):
            return Path(found)
    return None


def hub_cache_dir() -> Path:
    """The local Hub cache folder (``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``)."""
    import huggingface_hub.constants as hub

    return Path(hub.HF_HUB_CACHE)
