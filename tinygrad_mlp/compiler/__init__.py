"""Capture one training step and replay it without the tape (see :mod:`.compiled`)."""
from .compiled import CaptureError, CompiledStep, compile

__all__ = ["compile", "CompiledStep", "CaptureError"]
