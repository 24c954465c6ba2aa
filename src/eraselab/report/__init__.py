"""Reports: reports/metrics.json (dvc exp show columns), report.md, a self-contained index.html, plots.

Submodules are imported where used (build, ablation, cost, censor): importing one never loads the others.
"""
