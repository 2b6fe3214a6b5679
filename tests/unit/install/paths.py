"""Where the install paths live in the repository, for every test here."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "modelship"
CRDS = REPO / "crds"
IMAGES = REPO / "images"
ARGOCD = REPO / "gitops" / "argocd"
EXAMPLES = REPO / "examples" / "argocd"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
