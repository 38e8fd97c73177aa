"""X-ray feeds: the hot folder, image files from X-ray machines (DICOM included) and a fake machine."""
