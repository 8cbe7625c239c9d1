"""GPU planning (CUDA, ROCm) and rewriting bundles for a GPU build of torch."""
