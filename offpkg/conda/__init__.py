"""conda environments: inspection, conda-pack, unpack/relocate, bundle and install."""
