"""Review before the gap: the SBOM (sbom.py), licenses and the deny gate (licenses.py),
THIRD_PARTY_NOTICES (notices.py), the dependency graph (graph.py), reading a bundle's
review data back (model.py) and the approver's HTML report (report.py)."""
