"""FastAPI routers the app factory includes, one module per group of routes."""
