"""Server pages: login, the officer's review desk and the supervisor's daily report (HTML, SVG, small JS)."""
