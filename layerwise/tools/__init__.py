"""User-facing tools: gradcheck (and, with later issues, time_layers and summary)."""
from ..testing.gradcheck import GradcheckError, GradcheckReport, gradcheck

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport"]
