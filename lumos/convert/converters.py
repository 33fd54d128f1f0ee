"""Which converter and verifier serve a (domain, backend) pair.

Each converter maps one raw source record to a :class:`~lumos.convert.pipeline.Converted`
or raises :class:`~lumos.convert.pipeline.RecordFailure`; verifiers return ``None`` for a
passing annotation or ``(reason, detail)``.
"""

from __future__ import annotations

from lumos.convert.pipeline import ConversionConfig, Converted, RecordConverter, RecordFailure, Verifier
from lumos.convert.rules_maths import ConversionError, convert_record, natural_language_plan


def maths_rules(data: dict) -> Converted:
    """GSM8K-format record (``question``, ``answer`` with ``<<expr=value>>``) -> annotation."""
    try:
        plan, solution = convert_record(data)
    except ConversionError as error:
        raise RecordFailure(error.reason, error.detail) from None
    return Converted(task=data["question"].strip(), natural_language_plan=natural_language_plan(solution),
                     plan=plan, answer=solution.answer)


def maths_verifier(timeout: float = 1.0) -> Verifier:
    """Execution-based verification with one maths toolbox shared by every record."""
    from lumos.convert.verify import verify_plan
    from lumos.tools.maths import maths_toolbox

    toolbox = maths_toolbox(timeout=timeout)

    def verify(converted: Converted):
        verdict = verify_plan(converted.plan, converted.answer, toolbox)
        return None if verdict.ok else (verdict.reason, verdict.detail)

    return verify


def converter_for(config: ConversionConfig) -> RecordConverter:
    if config.backend == "rules" and config.domain == "maths":
        return maths_rules
    raise ValueError(f"no {config.backend!r} converter for domain {config.domain!r} yet")


def verifier_for(config: ConversionConfig) -> Verifier | None:
    if not config.verify:
        return None
    if config.domain == "maths":
        return maths_verifier()
    raise ValueError(f"--verify is not available for domain {config.domain!r} yet")
