"""The dbt Cloud back-end: the Administrative API v2 over HTTP, and the typed models its answers become."""
