"""Shadow month screens: tracker import, convergence dashboard, variance per date, issue log."""
