"""User-facing tools: gradcheck, summary (shapes, params, MACs) and per-layer timing."""
from ..testing.gradcheck import GradcheckError, GradcheckReport, gradcheck
from .summary import SummaryRow, summary, summary_rows

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport", "summary", "summary_rows", "SummaryRow"]
