"""Reports for every step: charts, the shared page layout and the JSON + HTML writers."""
