"""The OCI runtime-spec document layer: config.json model and schema validation."""
