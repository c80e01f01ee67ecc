"""Content store, OCI registry client, archive import, layer unpacking and overlay lower dirs."""
