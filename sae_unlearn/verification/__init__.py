"""Verification: is the knowledge removed, only suppressed, or not forgotten (see :mod:`.report`).

Room: verification's config (``config``), the measurement of one model (``measurement``), the
verdict rules (``verdict``), the report and ``verify`` (``report``), its Markdown and figures
(``rendering``), the data builders (``data``) and the ``verify`` command (``cli``). Imports
``attacks``, ``evaluation``, ``data``, ``models``, ``viz`` and the ground.
"""

from sae_unlearn.verification.data import (
    VerificationData,
    secrets_verification_data,
    tofu_verification_data,
    verification_data,
)
from sae_unlearn.verification.report import (
    EVIDENCE,
    VERDICTS,
    Check,
    ControlMetrics,
    Measurement,
    UnitMetrics,
    VerificationReport,
    VerifyConfig,
    judge,
    measure,
    verify,
)

__all__ = [
    "EVIDENCE",
    "VERDICTS",
    "Check",
    "ControlMetrics",
    "Measurement",
    "UnitMetrics",
    "VerificationData",
    "VerificationReport",
    "VerifyConfig",
    "judge",
    "measure",
    "secrets_verification_data",
    "tofu_verification_data",
    "verification_data",
    "verify",
]
