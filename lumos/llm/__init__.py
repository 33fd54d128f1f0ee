"""Text generation behind one batched interface (see ``lumos.llm.base``).

Backends are imported only when used: ``lumos.llm.openai_backend.OpenAIGenerator``,
``lumos.llm.hf_backend.HFGenerator``, ``lumos.llm.scripted.ScriptedGenerator``; or pick one
by name with ``get_generator(spec)``. ``python -m lumos.llm.serve`` serves any of them over
the OpenAI protocol.
"""

from lumos.llm.base import (
    DEFAULT_STOP,
    BatchGenerationError,
    ChatGenerator,
    GenerationError,
    Generator,
    Usage,
    get_generator,
    truncate_at_stop,
)

__all__ = ["DEFAULT_STOP", "BatchGenerationError", "ChatGenerator", "GenerationError", "Generator", "Usage",
           "get_generator", "truncate_at_stop"]
