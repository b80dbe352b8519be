"""The API types: pydantic models for RoutePolicy and QualificationRun, the source of the CRDs."""

from assay.api.common import Condition, ConfigMapKeyRef, LocalObjectRef, SecretKeyRef
from assay.api.evaluation import Candidate, Dataset, Endpoint, Execution, Judge, ModelRoute, TestSettings
from assay.api.qualificationrun import QualificationRunSpec, QualificationRunStatus
from assay.api.routepolicy import RoutePolicySpec, RoutePolicyStatus

__all__ = [
    "Candidate",
    "Condition",
    "ConfigMapKeyRef",
    "Dataset",
    "Endpoint",
    "Execution",
    "Judge",
    "LocalObjectRef",
    "ModelRoute",
    "QualificationRunSpec",
    "QualificationRunStatus",
    "RoutePolicySpec",
    "RoutePolicyStatus",
    "SecretKeyRef",
    "TestSettings",
]
