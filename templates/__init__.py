"""Templates shipped into bundles (install.sh, install.ps1) and built-in stacks."""
