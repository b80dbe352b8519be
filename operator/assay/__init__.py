"""assay: qualify a cheaper LLM route on your own prompts, promote it, roll it back on drift."""

__version__ = "0.1.0"

GROUP = "assay.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
