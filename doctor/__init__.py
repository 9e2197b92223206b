"""llmdoctor: finds and fixes what stops large language models from running locally.

The engine lives here (models, registry, runner, snapshot, journal, renderers, CLI);
checks and fixes live in ``llmdoctor.checks`` and ``llmdoctor.fixes`` and are found
through entry points, like any third-party plugin.
"""

__version__ = "0.1.0"
