"""Verification: is the knowledge removed, only suppressed, or not forgotten (see :mod:`.report`)."""

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
