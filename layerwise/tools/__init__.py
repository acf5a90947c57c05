"""User-facing tools: gradcheck, summary (shapes, params, MACs) and per-layer timing."""
from ..testing.gradcheck import GradcheckError, GradcheckReport, gradcheck
from .summary import SummaryRow, summary, summary_rows
from .timing import LayerTime, format_timing, time_layers

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport", "summary", "summary_rows", "SummaryRow",
           "time_layers", "format_timing", "LayerTime"]
