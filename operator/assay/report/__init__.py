"""Qualification reports and the kubectl plugin.

- `content`: a Report, recomputed from evidence with assay.qualification.decision, and its formatted rows (pure);
- `figures`: its plots (matplotlib, Agg; the optional `report` extra);
- `render`: HTML (self-contained), Markdown and JSON;
- `cluster`: reading runs and evidence, listing and annotating policies through the current kubeconfig;
- `command`: `assay report`; `plugin`: `kubectl assay status|promote|rollback|requalify`.
"""
