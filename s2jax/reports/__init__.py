"""Machine-written result reports built from saved workdirs, without compute."""
