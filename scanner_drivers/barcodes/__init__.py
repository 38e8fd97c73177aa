"""Barcode reading in images: engines, preprocessing ladder, evidence weighing, worker threads."""
