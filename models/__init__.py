"""Model artefacts with manifests, and the code that builds, trains, evaluates and runs them."""
