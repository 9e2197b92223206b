"""Runs one smoke test in a fresh process: ``python -m llmdoctor.smoke_worker MODULE:FUNC JSON``."""

from __future__ import annotations

import importlib
import json
import sys

from llmdoctor.smoke import RESULT_MARKER


def main(argv: list) -> int:
    target, options = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    module_name, _, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(options)
    except Exception as exc:
        result = {"status": "fail", "message": f"{type(exc).__name__}: {exc}"}
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
