"""The edge: what tesoro does to every HTTP request before and after the framework.

One pure-ASGI layer (`layer.Edge`) does it once per request, calling one module per concern
as plain functions: request ids (`request_ids`), the body and per-caller limits (`limits`),
authentication of writes before their body (`auth`), CORS (`cors`), HEAD (`head`), content
negotiation and encoding (`compression`), metrics and the access line (`metrics`), on the
helpers of `base`.
"""
