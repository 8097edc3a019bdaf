"""Read-only views for pages and the API: no writes (those are app.actions')."""
