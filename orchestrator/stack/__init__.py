"""PURE. The Compose loader: YAML (1.2 semantics, positions) → interpolation → include/extends →
merge → schema → canonical long form → frozen model. Reads files only through an injected
FileSource; never os.environ."""
