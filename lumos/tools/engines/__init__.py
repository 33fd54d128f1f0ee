"""The engines under the domain toolboxes: exact arithmetic and number handling, the symbolic (sympy)
operations the maths worker runs, and retrieval and ranking (bm25s, sentence-transformers).

Layers of ``lumos.tools``: domain toolboxes on top (``maths``, ``qa``, ``web``, ``sql``), these
engines below them, process isolation at the bottom (``sandbox``, ``worker``, ``confine``,
``seccomp``). An engine never imports a toolbox.
"""
