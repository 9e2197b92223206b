"""Knowledge that checks, fixes and the engine share, in one place (units for now; issue 15
moves the CUDA, bitsandbytes, Windows-environment and shell-startup rules here too)."""
