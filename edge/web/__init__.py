"""Pages, styles, script and sounds of the operator terminal, plus the helpers that shape its data."""
