"""Command-line tools of the device library: device tests on site and the barcode benchmark."""
