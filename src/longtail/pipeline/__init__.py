"""Pipeline steps that wire loading, auditing and writing together."""
