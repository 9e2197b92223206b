"""Checks that only make sense inside the Python process that will download: a notebook.

    import llmdoctor.notebook; llmdoctor.notebook.check()

huggingface_hub reads HF_ENDPOINT once, when it is imported; setting it in a cell after
``import transformers`` (or anything that imports huggingface_hub) changes nothing. This
compares the variable with what the imported library actually uses.
"""

from __future__ import annotations

import os
import sys
from typing import Optional


def hf_endpoint_problem(environ: Optional[dict] = None, modules: Optional[dict] = None) -> Optional[str]:
    """One line saying what is wrong, or None when the library uses what the variable says."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    constants = modules.get("huggingface_hub.constants")
    if constants is None:
        return None  # not imported yet: it will read the variable when it is
    from llmdoctor.knowledge.hf import intended_endpoint

    wanted = intended_endpoint(environ.get("HF_ENDPOINT"))
    used = str(getattr(constants, "ENDPOINT", "")).rstrip("/")
    if used and used != wanted:
        return (f"HF_ENDPOINT is {wanted} but huggingface_hub, imported before it was set, uses {used}: "
                "restart the kernel and set HF_ENDPOINT before importing huggingface_hub, transformers or datasets")
    return None


def check() -> bool:
    """Print what is wrong (or that all is well); True when all is well."""
    problem = hf_endpoint_problem()
    print(f"llmdoctor: {problem}" if problem else "llmdoctor: huggingface_hub uses the HF_ENDPOINT that is set")
    return problem is None
