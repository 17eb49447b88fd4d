"""Dataset manifests: one JSON file per dataset id (expected image count,
images per class, layouts, label rule, public archives and checksums).
Loaded with :func:`evaluators.manifests.load_manifest`."""
