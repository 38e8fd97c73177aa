"""Barcode scanners: the driver interface, serial scanners with vendor framing, and fakes."""
