"""The generations API and the RabbitMQ intake: how other systems ask for images.

A face, like the CLIs: it validates, records the request in the project's tables (one
transaction, `zimage_assets/requests.py`) and answers; it never generates. The
`request_batches_sensor` mints recorded requests into `request` batches that the normal assets
generate, gate and publish (sensors/requests.py).

    app.py      the FastAPI application: routes, the JSON error body, waiting for small requests
    auth.py     Bearer API keys, scopes, requests per minute
    schemas.py  the OpenAPI document's request and error schemas, from the domain's field table
    server.py   `zimage api`: the settings -> the app -> uvicorn on 127.0.0.1
    keys.py     `zimage api-key create | list | revoke`
    intake.py   `zimage intake`: the RabbitMQ consumer
"""
