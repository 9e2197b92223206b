"""``python -m llmdoctor``: the same as the ``llmdoctor`` command."""

from llmdoctor.entry import main

if __name__ == "__main__":
    main()
