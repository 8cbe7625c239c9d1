"""Updates across the air gap: delta bundles, atomic sync upgrades with rollback, and diffs.

- :mod:`.delta`: ``bundle --base OLD`` (read a base, strip what it provides);
- :mod:`.sync`: ``install --upgrade`` as an atomic sync in a hard-link clone;
- :mod:`.venvfiles`: changing that clone without writing through a shared hard link;
- :mod:`.state`: generations, the journal, the lock, the atomic swap;
- :mod:`.rollback`: ``offpkg rollback``;
- :mod:`.diff`: ``offpkg diff`` and :func:`.diff.diff_manifests` for other reports.
"""
