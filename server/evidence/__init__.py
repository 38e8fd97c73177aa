"""Evidence bundles of review items and cases: collected, signed (Ed25519), verified offline."""
