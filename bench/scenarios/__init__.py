"""One module per benchmark scenario; each returns Figures (bench.results) and a dict of raw details."""
