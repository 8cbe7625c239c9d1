"""GPU builds of torch: facts (data), planning (NVIDIA, AMD), PyPI's builds, bundle rewriting and checks."""
