"""Reports: reports/metrics.json (dvc exp show columns), report.md, a self-contained index.html, plots."""

from eraselab.report.build import build_report

__all__ = ["build_report"]
