"""``python -m llmdoctor``: the same as the ``llmdoctor`` command."""

from llmdoctor.cli import main

if __name__ == "__main__":
    main()
