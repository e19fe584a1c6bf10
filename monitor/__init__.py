"""Webcam driver-attention monitor: MTCNN + FPNet head pose, attention rules, alerts, sessions."""

__version__ = "0.1.0"
