"""HTTP hosting: the ASGI app, its layers, metrics and JSON logs."""
