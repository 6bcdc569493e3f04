"""Verification: is the knowledge removed, only suppressed, or not forgotten (see :mod:`.report`)."""

from sae_unlearn.verification.data import (
    VerificationData,
    secrets_verification_data,
    tofu_verification_data,
    verification_data,
)
from sae_unlearn.verification.report import (
    VERDICTS,
    Check,
    VerificationReport,
    VerifyConfig,
    judge,
    measure,
    verify,
)

__all__ = [
    "VERDICTS",
    "Check",
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
