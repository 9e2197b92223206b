"""Knowledge that checks, fixes and the engine share, each kind in one module:

- ``cuda``: CUDA version parsing, which driver runs which CUDA, architectures per release,
  nvcc's host-compiler windows, and the driver's facts as other rules read them;
- ``bitsandbytes``: how each bitsandbytes release picks its native library, and what it ships;
- ``windows``: Windows' limits on variables and command lines, and how it builds Path;
- ``path_entries``: how PATH entries compare and how startup files spell them;
- ``shells``: the one list of shell startup files, and the one llmdoctor writes per shell;
- ``hf``: the Hugging Face endpoint's default and the one way to read ``HF_ENDPOINT``;
- ``units``: byte units.

Everything here is pure: data and functions of facts, no I/O.
"""
