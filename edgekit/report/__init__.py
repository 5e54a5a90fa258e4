"""Reports: report.json, Markdown/HTML/JUnit rendering, plots, and gates against a baseline."""
