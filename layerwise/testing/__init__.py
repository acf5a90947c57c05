"""Tools for checking layers: finite-difference gradcheck and the PyTorch oracle helpers."""
from .gradcheck import GradcheckError, GradcheckReport, gradcheck

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport"]
