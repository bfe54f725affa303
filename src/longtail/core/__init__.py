"""The small core every layer builds on: configuration, errors, the registry and artifact I/O."""
