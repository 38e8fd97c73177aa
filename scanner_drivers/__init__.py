"""Device library: opens scanners, cameras, X-ray feeds and sorter links by URL; knows nothing of parcels."""
