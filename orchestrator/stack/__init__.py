"""PURE. The Compose loader: YAML (1.2 semantics, positions) → interpolation → include/extends →
merge → schema → canonical long form → frozen model. Reads files only through an injected
FileSource; never os.environ.

Entry point: :func:`orchestrator.stack.loader.load`. Modules: ``source`` (FileSource protocol and
the in-memory one), ``yamlsrc`` (YAML), ``interpolate``, ``dotenv``, ``merge``, ``formats``
(port/volume short syntax), ``canonical`` (long form, paths, normalisation), ``schema``,
``render`` (Compose's record types and Go-compatible JSON), ``yamlout``, ``confighash``, and
``bind`` (document → frozen model, owned with ``orchestrator.model``). See specs/stack-format.md.
"""
