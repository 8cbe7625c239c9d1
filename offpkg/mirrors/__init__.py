"""The mirror catalog and the pip.conf/.condarc readers and editors."""
