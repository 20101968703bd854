"""Anomaly detection: one module per detector behind the `Detector` protocol, and a registry."""

from relayq.services.anomalies.base import Anomaly, Detector, Observation
from relayq.services.anomalies.registry import STANDARD_DETECTORS, DetectorRegistry

__all__ = ["STANDARD_DETECTORS", "Anomaly", "Detector", "DetectorRegistry", "Observation"]
