"""Tools for checking layers: finite-difference gradcheck, random loss inputs and the PyTorch oracle helpers."""
from .gradcheck import GradcheckError, GradcheckReport, gradcheck
from .loss_inputs import loss_inputs

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport", "loss_inputs"]
