"""The device side: bundles, the runtime API, serve, the remote runner. Imports without torch."""
